"""The leadership report: one self-contained HTML page (and its PDF) from the ClickHouse
store, for people who never open Grafana (docs/report.md).

``figures.py`` runs the queries (the dashboards' own SQL, expanded as Grafana does);
``charts.py`` draws with Altair (Vega-Lite) to static SVG; ``page.py`` writes the HTML;
``browser.py`` prints it to PDF with headless Chromium; ``write.py`` puts them together.
"""
