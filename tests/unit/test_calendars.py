"""SPEC 2.1 and the clock of SPEC 3: one test per boundary rule of a business calendar, the
conformance cases' hand computations, and every error of the calendars file."""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from pathlib import Path

import pytest

from promise_tracker.calendars import ALWAYS, Calendar, always, load_calendars
from promise_tracker.errors import CalendarError, SettingsError

CASES = Path(__file__).resolve().parents[1] / "conformance" / "cases" / "v2"
WEEKDAYS = ["09:00-12:30", "13:30-18:00"]
SUPPORT_EU = f"""
timezone = "Europe/Paris"
mon = {WEEKDAYS}
tue = {WEEKDAYS}
wed = {WEEKDAYS}
thu = {WEEKDAYS}
fri = {WEEKDAYS}
""".replace("'", '"')
# the Sunday night windows of ops-ny, which meet both clock changes of America/New_York
NY_NIGHTS = 'timezone = "America/New_York"\nsun = ["01:15-01:45", "02:30-06:00"]\n'


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def calendar(tmp_path: Path, body: str, name: str = "c") -> Calendar:
    return load_calendars(write(tmp_path, f"[{name}]\n{body}"))[name]


def write(tmp_path: Path, text: str, name: str = "calendars.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def conformance() -> dict[str, Calendar]:
    return load_calendars(CASES / "calendars.toml")


class TestBoundaries:
    def test_used_up_at_the_end_of_an_interval_is_that_end_not_the_next_start(self, tmp_path):
        eu = calendar(tmp_path, SUPPORT_EU)
        monday_9 = at("2026-03-02T09:00:00+01:00")
        assert eu.advance(monday_9, 12600) == at("2026-03-02T12:30:00+01:00")
        assert eu.advance(monday_9, 12601) == at("2026-03-02T13:30:01+01:00")

    def test_a_start_in_closed_time_waits_for_the_next_open_interval(self, tmp_path):
        eu = calendar(tmp_path, SUPPORT_EU)
        saturday = at("2026-03-07T11:00:00+01:00")
        assert eu.advance(saturday, 60) == at("2026-03-09T09:01:00+01:00")
        assert eu.open_seconds(saturday, at("2026-03-09T09:00:00+01:00")) == 0

    def test_open_seconds_counts_only_the_open_part_of_a_span(self, tmp_path):
        eu = calendar(tmp_path, SUPPORT_EU)

        def monday(hh_mm: str) -> float:
            return at(f"2026-03-02T{hh_mm}:00+01:00")

        assert eu.open_seconds(monday("08:59"), monday("09:01")) == 60
        assert eu.open_seconds(monday("12:29"), monday("13:31")) == 120
        assert eu.open_seconds(monday("12:30"), monday("13:30")) == 0

    def test_an_interval_may_end_at_24_00_the_next_local_midnight(self, tmp_path):
        fri = calendar(tmp_path, 'timezone = "America/New_York"\nfri = ["20:00-24:00"]')
        friday_23 = at("2026-03-20T23:00:00-04:00")
        assert fri.advance(friday_23, 3600) == at("2026-03-21T00:00:00-04:00")
        assert fri.open_seconds(friday_23, at("2026-03-21T12:00:00-04:00")) == 3600
        assert fri.advance(friday_23, 3601) == at("2026-03-27T20:00:01-04:00")

    def test_intervals_touching_across_midnight_run_as_one(self, tmp_path):
        night = calendar(
            tmp_path, 'timezone = "Europe/Paris"\nfri = ["22:00-24:00"]\nsat = ["00:00-02:00"]'
        )
        friday_22 = at("2026-03-06T22:00:00+01:00")
        assert night.open_seconds(friday_22, at("2026-03-07T02:00:00+01:00")) == 4 * 3600
        assert night.advance(friday_22, 2 * 3600) == at("2026-03-07T00:00:00+01:00")
        assert night.advance(friday_22, 3 * 3600) == at("2026-03-07T01:00:00+01:00")
        assert night.advance(friday_22, 4 * 3600 + 1) == at("2026-03-13T22:00:01+01:00")

    def test_touching_intervals_within_a_day_are_allowed_and_joined(self, tmp_path):
        day = calendar(tmp_path, 'timezone = "UTC"\nmon = ["09:00-12:00", "12:00-13:00"]')
        assert day.day_intervals(date(2026, 3, 2)) == (
            (at("2026-03-02T09:00Z"), at("2026-03-02T13:00Z")),
        )

    def test_a_full_week_of_00_00_24_00_without_holidays_is_exactly_24_7(self, conformance):
        london = conformance["always-lon"]
        assert london.is_always_open
        t0 = at("2026-03-28T12:00:00.123456Z")
        assert london.advance(t0, 86400.5) == t0 + 86400.5
        assert london.open_seconds(t0, t0 + 0.1) == (t0 + 0.1) - t0


class TestDaylightSaving:
    def test_spring_forward_a_skipped_start_takes_the_offset_before_the_change(self, tmp_path):
        ny = calendar(tmp_path, NY_NIGHTS)
        # 02:30 does not exist on 2026-03-08: fold=0 reads it as 02:30 EST = 07:30Z (03:30 EDT)
        assert ny.day_intervals(date(2026, 3, 8)) == (
            (at("2026-03-08T06:15:00Z"), at("2026-03-08T06:45:00Z")),
            (at("2026-03-08T07:30:00Z"), at("2026-03-08T10:00:00Z")),
        )

    def test_spring_forward_an_interval_whose_end_maps_before_its_start_is_empty(self, tmp_path):
        gap = calendar(tmp_path, 'timezone = "America/New_York"\nsun = ["02:30-03:15"]')
        # 02:30 -> 07:30Z but 03:15 EDT -> 07:15Z: nothing is open that Sunday
        assert gap.day_intervals(date(2026, 3, 8)) == ()
        sunday = at("2026-03-08T00:00:00-05:00")
        assert gap.open_seconds(sunday, sunday + 86400) == 0
        assert gap.advance(sunday, 60) == at("2026-03-15T02:31:00-04:00")

    def test_spring_forward_intervals_that_overlap_once_mapped_are_joined(self, tmp_path):
        both = calendar(
            tmp_path, 'timezone = "America/New_York"\nsun = ["01:00-02:30", "03:00-04:00"]'
        )
        # 06:00Z-07:30Z and 07:00Z-08:00Z: 2 hours open, not 2.5
        sunday = at("2026-03-08T00:00:00-05:00")
        assert both.open_seconds(sunday, sunday + 86400) == 7200
        assert both.advance(sunday, 7200) == at("2026-03-08T08:00:00Z")

    def test_fall_back_a_repeated_time_is_its_first_occurrence(self, tmp_path):
        ny = calendar(tmp_path, NY_NIGHTS)
        saturday = at("2026-10-31T12:00:00-04:00")
        # 01:15 happens twice on 2026-11-01: the first, 01:15 EDT = 05:15Z
        assert ny.advance(saturday, 1200) == at("2026-11-01T05:35:00Z")
        assert ny.day_intervals(date(2026, 11, 1))[0] == (
            at("2026-11-01T05:15Z"),
            at("2026-11-01T05:45Z"),
        )

    def test_fall_back_an_interval_over_the_repeated_hour_counts_real_seconds(self, tmp_path):
        ny = calendar(tmp_path, 'timezone = "America/New_York"\nsun = ["01:30-02:00"]')
        # from 01:30 EDT (05:30Z) to 02:00 EST (07:00Z): an hour and a half of real time
        assert ny.day_intervals(date(2026, 11, 1)) == (
            (at("2026-11-01T05:30Z"), at("2026-11-01T07:00Z")),
        )

    def test_a_clock_counts_real_seconds_over_a_23_hour_local_day(self, tmp_path):
        eu = calendar(tmp_path, 'timezone = "Europe/Paris"\nsun = ["00:00-24:00"]')
        sunday = at("2026-03-29T00:00:00+01:00")
        assert eu.open_seconds(sunday, sunday + 2 * 86400) == 23 * 3600

    def test_a_holiday_on_a_clock_change_day_closes_the_whole_local_day(self, tmp_path):
        ny = calendar(tmp_path, NY_NIGHTS + 'holidays = ["2026-03-08"]')
        assert ny.day_intervals(date(2026, 3, 8)) == ()
        assert ny.advance(at("2026-03-07T10:00:00-05:00"), 60) == at("2026-03-15T01:16:00-04:00")


class TestClosedDays:
    def test_holidays_list_closes_whole_local_days(self, tmp_path):
        eu = calendar(tmp_path, SUPPORT_EU + 'holidays = ["2026-03-16", 2026-03-18]')
        assert eu.closed_on(date(2026, 3, 16)) and eu.closed_on(date(2026, 3, 18))
        assert not eu.closed_on(date(2026, 3, 17))
        friday_18 = at("2026-03-13T18:00:00+01:00")
        assert eu.advance(friday_18, 8 * 3600 + 60) == at("2026-03-19T09:01:00+01:00")

    def test_ics_all_day_events_with_rrule_and_exdate_close_days_timed_ones_do_not(self, tmp_path):
        (tmp_path / "days.ics").write_text(
            "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//t//EN\n"
            "BEGIN:VEVENT\nUID:a\nDTSTAMP:20200101T000000Z\nDTSTART;VALUE=DATE:20200309\n"
            "RRULE:FREQ=YEARLY\nEXDATE;VALUE=DATE:20270309\nEND:VEVENT\n"
            "BEGIN:VEVENT\nUID:b\nDTSTAMP:20200101T000000Z\nDTSTART;VALUE=DATE:20261224\n"
            "DTEND;VALUE=DATE:20261227\nEND:VEVENT\n"
            "BEGIN:VEVENT\nUID:c\nDTSTAMP:20200101T000000Z\nDTSTART;VALUE=DATE:20261231\n"
            "DTEND;VALUE=DATE:20270102\nEND:VEVENT\n"
            "BEGIN:VEVENT\nUID:d\nDTSTAMP:20200101T000000Z\nDTSTART:20260310T140000Z\n"
            "DTEND:20260310T150000Z\nEND:VEVENT\nEND:VCALENDAR\n"
        )
        days = calendar(tmp_path, SUPPORT_EU + 'holidays_ics = ["days.ics"]')
        closed = {
            d for d in (date(2026, 3, 9), date(2027, 3, 9), date(2028, 3, 9)) if days.closed_on(d)
        }
        assert closed == {date(2026, 3, 9), date(2028, 3, 9)}
        assert not days.closed_on(date(2026, 3, 10))  # the timed event closes nothing
        # [DTSTART, DTEND): the 24th to the 26th, not the 27th; across New Year both years
        assert [days.closed_on(date(2026, 12, d)) for d in (23, 24, 25, 26, 27)] == [
            False, True, True, True, False,
        ]  # fmt: skip
        assert days.closed_on(date(2026, 12, 31)) and days.closed_on(date(2027, 1, 1))
        assert not days.closed_on(date(2027, 1, 2))

    def test_ics_paths_are_relative_to_the_calendars_file(self, tmp_path):
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "x.ics").write_text(
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\nEND:VEVENT\nEND:VCALENDAR\n"
        )
        path = write(tmp_path / "sub", f"[c]\n{SUPPORT_EU}holidays_ics = ['x.ics']\n")
        assert load_calendars(path)["c"].closed_on(date(2026, 1, 1))

    def test_country_public_holidays_close_days_in_any_year(self, tmp_path):
        fr = calendar(tmp_path, SUPPORT_EU + 'country = "FR"')
        assert fr.closed_on(date(2026, 4, 6))  # Easter Monday
        assert fr.closed_on(date(2100, 3, 29))  # Easter Monday, expanded when asked
        assert not fr.closed_on(date(2026, 4, 3))  # Good Friday: only in Alsace-Moselle
        assert fr.advance(at("2026-04-03T18:00:00+02:00"), 60) == at("2026-04-07T09:01:00+02:00")

    def test_country_subdivision_adds_its_regional_holidays(self, tmp_path):
        moselle = calendar(tmp_path, SUPPORT_EU + 'country = "FR"\nsubdivision = "57"')
        assert moselle.closed_on(date(2026, 4, 3)) and moselle.closed_on(date(2026, 12, 26))

    def test_country_observed_days_count_even_across_new_year(self, tmp_path):
        us = calendar(
            tmp_path, 'timezone = "America/New_York"\nfri = ["09:00-17:00"]\ncountry = "US"'
        )
        # 2022-01-01 was a Saturday: New Year's Day was observed on Friday 2021-12-31
        assert us.closed_on(date(2021, 12, 31))

    def test_a_calendar_whose_every_open_day_is_closed_never_runs(self, tmp_path):
        (tmp_path / "daily.ics").write_text(
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20200101\nRRULE:FREQ=DAILY\n"
            "END:VEVENT\nEND:VCALENDAR\n"
        )
        shut = calendar(
            tmp_path, 'timezone = "UTC"\nmon = ["09:00-10:00"]\nholidays_ics = ["daily.ics"]'
        )
        assert shut.advance(at("2026-01-01T00:00Z"), 60) == math.inf


class TestTheTwoQuestions:
    def test_advance_of_nothing_is_the_start_and_a_negative_amount_is_a_bug(self, conformance):
        eu = conformance["support-eu"]
        saturday = at("2026-03-07T11:00:00Z")
        assert eu.advance(saturday, 0) == saturday
        with pytest.raises(ValueError):
            eu.advance(saturday, -1)

    def test_open_seconds_of_an_empty_or_reversed_span_is_zero(self, conformance):
        eu = conformance["support-eu"]
        monday = at("2026-03-02T10:00:00Z")
        assert eu.open_seconds(monday, monday) == 0 and eu.open_seconds(monday, monday - 60) == 0
        assert ALWAYS.open_seconds(monday, monday - 60) == 0

    def test_open_seconds_undoes_advance_over_months_and_fractions(self, conformance):
        for cal in conformance.values():
            for start in (at("2026-01-01T00:00:00Z"), at("2026-03-07T10:00:00.25Z")):
                for seconds in (0.5, 3600, 12600, 144000, 5_000_000.75):
                    end = cal.advance(start, seconds)
                    assert cal.open_seconds(start, end) == pytest.approx(seconds, abs=1e-6)
                    assert cal.open_seconds(start, end - 0.001) < seconds

    def test_a_long_promise_equals_a_day_by_day_sum(self, conformance):
        eu = conformance["support-eu"]
        start = at("2026-01-01T00:00:00Z")
        end = eu.advance(start, 200 * 8 * 3600)
        day, total = date(2026, 1, 1), 0
        while day.toordinal() <= date(2027, 1, 1).toordinal():
            total += sum(min(b, end) - a for a, b in eu.day_intervals(day) if a < end)
            day = date.fromordinal(day.toordinal() + 1)
        assert total == 200 * 8 * 3600

    def test_a_whole_week_used_up_exactly_ends_at_the_weeks_last_open_instant(self, tmp_path):
        """The clock skips whole weeks (Thursday to Wednesday in UTC days) at a time: one
        that holds exactly what is left is walked into, not skipped."""
        office = calendar(tmp_path, f'timezone = "UTC"\n{_weekdays("09:00-17:00")}')
        wednesday_17 = at("2026-03-04T17:00:00Z")
        assert office.advance(wednesday_17, 5 * 8 * 3600) == at("2026-03-11T17:00:00Z")
        assert office.advance(wednesday_17, 10 * 8 * 3600) == at("2026-03-18T17:00:00Z")
        assert office.open_seconds(wednesday_17, at("2026-03-18T17:00:00Z")) == 10 * 8 * 3600
        thursday = at("2026-03-05T00:00:00Z")
        assert office.open_seconds(thursday, thursday + 14 * 86400) == 10 * 8 * 3600

    def test_the_ends_of_the_date_range_answer_instead_of_crashing(self, conformance):
        ny = conformance["ops-ny"]  # its ICS rule cannot be expanded in year 1
        year_1 = at("0001-01-01T12:00:00Z")
        assert ny.advance(year_1, 3600) > year_1
        assert ny.advance(at("9999-12-30T00:00:00Z"), 10 * 86400) == math.inf
        assert ny.advance(year_1, math.inf) == math.inf
        assert ny.open_seconds(year_1, math.inf) == math.inf

    def test_the_24_7_clock_is_start_plus_seconds(self):
        assert always() is ALWAYS and ALWAYS.is_always_open
        t0 = 1772442000.1
        assert ALWAYS.advance(t0, 3600.3) == t0 + 3600.3
        assert ALWAYS.open_seconds(t0, t0 + 7.7) == (t0 + 7.7) - t0


class TestConformanceHandComputations:
    """README.md of the v2 cases: D and the 0.75 point of each calendar case without pauses."""

    CASE_IDS = [
        "eu-interval-end", "ny-gap-ics", "eu-holiday-list", "ny-midnight", "lon-dst-24h",
        "eu-fall-dst", "ny-repeat", "eu-warn-active",
    ]  # fmt: skip

    @pytest.mark.parametrize("promise_id", CASE_IDS)
    def test_due_time_and_warning_point(self, conformance, promise_id):
        issued = _issued()[promise_id]
        terms, t0 = issued["data"]["terms"], at(issued["time"])
        clock = conformance[terms["calendar"]]
        warning = _warnings()[promise_id]
        assert clock.advance(t0, terms["within_seconds"]) == warning["due_at"]
        assert clock.advance(t0, 0.75 * terms["within_seconds"]) == warning["warn_at"]

    def test_readme_instants(self, conformance):
        eu, ny = conformance["support-eu"], conformance["ops-ny"]
        assert eu.advance(at("2026-03-02T09:00:00+01:00"), 12600) == at("2026-03-02T11:30:00Z")
        gap_t0 = at("2026-03-07T10:00:00-05:00")
        assert ny.advance(gap_t0, 14400) == at("2026-03-10T13:00:00Z")
        assert ny.advance(gap_t0, 10800) == at("2026-03-08T10:00:00Z")  # the Sunday window's end
        assert ny.closed_on(date(2026, 3, 9)) and not ny.closed_on(date(2026, 3, 10))
        assert ny.advance(at("2026-10-31T12:00:00-04:00"), 1200) == at("2026-11-01T05:35:00Z")

    def test_eu_weekend_pause_composes_from_the_two_questions(self, conformance):
        """How the engine counts a pause: run until the pause, then advance from the resume."""
        eu = conformance["support-eu"]
        t0, paused = at("2026-04-03T17:30:00+02:00"), at("2026-04-03T17:45:00+02:00")
        resumed = at("2026-04-06T11:00:00+02:00")  # Easter Monday (FR): closed
        ran = eu.open_seconds(t0, paused)
        assert ran == 900
        assert eu.advance(resumed, 28800 - ran) == _warnings()["eu-weekend-pause"]["due_at"]
        assert eu.advance(resumed, 21600 - ran) == _warnings()["eu-weekend-pause"]["warn_at"]


class TestErrors:
    """Every unusable file stops the program with one line: file, calendar, field, fix."""

    @staticmethod
    def message(path: Path) -> str:
        with pytest.raises(CalendarError) as caught:
            load_calendars(path)
        text = str(caught.value)
        assert "\n" not in text and text.startswith(str(path))
        return text

    def bad(self, tmp_path: Path, body: str) -> str:
        return self.message(write(tmp_path, f"[support-eu]\n{body}"))

    def test_is_a_settings_error_so_the_cli_exits_2(self):
        assert issubclass(CalendarError, SettingsError) and CalendarError.exit_code == 2

    def test_the_end_before_the_start(self, tmp_path):
        text = self.bad(tmp_path, 'timezone = "Europe/Paris"\nmon = ["09:00-12:30", "13:30-12:00"]')
        assert text == (
            f'{tmp_path / "calendars.toml"}: [support-eu] mon[1] "13:30-12:00": the end must be'
            " after the start (HH:MM-HH:MM, 24:00 allowed as an end)"
        )

    @pytest.mark.parametrize(
        "interval",
        ["9:00-12:00", "09:00 - 12:00", "09:00", "24:00-24:00", "12:60-13:00", "10:00-24:01"],
    )
    def test_a_malformed_interval(self, tmp_path, interval):
        text = self.bad(tmp_path, f'timezone = "Europe/Paris"\ntue = ["{interval}"]')
        assert f'[support-eu] tue[0] "{interval}": ' in text and "HH:MM-HH:MM" in text

    def test_an_interval_that_is_not_a_string(self, tmp_path):
        text = self.bad(tmp_path, 'timezone = "Europe/Paris"\nwed = [900]')
        assert "[support-eu] wed[0] 900: not an interval" in text

    def test_a_day_that_is_not_a_list(self, tmp_path):
        text = self.bad(tmp_path, 'timezone = "Europe/Paris"\nthu = "09:00-18:00"')
        assert '[support-eu] thu "09:00-18:00": must be a list' in text

    def test_overlapping_intervals_within_a_day(self, tmp_path):
        text = self.bad(tmp_path, 'timezone = "Europe/Paris"\nfri = ["13:00-18:00", "09:00-13:30"]')
        assert '[support-eu] fri[0] "13:00-18:00": overlaps fri[1] "09:00-13:30"' in text

    def test_an_unknown_key_with_a_suggestion(self, tmp_path):
        text = self.bad(tmp_path, 'timezon = "Europe/Paris"\nmon = ["09:00-18:00"]')
        assert '[support-eu] timezon: unknown key; did you mean "timezone"?' in text

    def test_a_missing_timezone(self, tmp_path):
        text = self.bad(tmp_path, 'mon = ["09:00-18:00"]')
        assert "[support-eu] timezone: missing; add timezone = " in text

    @pytest.mark.parametrize("zone", ["Europe/Pariss", "Europe", "", "../etc/passwd"])
    def test_an_unknown_zone(self, tmp_path, zone):
        text = self.bad(tmp_path, f'timezone = "{zone}"\nmon = ["09:00-18:00"]')
        assert f'[support-eu] timezone "{zone}": unknown time zone; use an IANA' in text

    def test_a_malformed_holiday(self, tmp_path):
        text = self.bad(tmp_path, SUPPORT_EU + 'holidays = ["2026-02-30"]')
        assert '[support-eu] holidays[0] "2026-02-30": not a date; write "YYYY-MM-DD"' in text

    def test_an_unreadable_ics_file(self, tmp_path):
        text = self.bad(tmp_path, SUPPORT_EU + 'holidays_ics = ["missing.ics"]')
        assert '[support-eu] holidays_ics[0] "missing.ics": cannot be read' in text
        assert "relative to the calendars file" in text

    @pytest.mark.parametrize(
        "content",
        [
            "not a calendar at all",
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:2026\nEND:VEVENT\nEND:VCALENDAR\n",
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:no start\nEND:VEVENT\nEND:VCALENDAR\n",
            "BEGIN:VEVENT\nDTSTART;VALUE=DATE:20260101\nEND:VEVENT\n",
        ],
    )
    def test_an_invalid_ics_file(self, tmp_path, content):
        (tmp_path / "bad.ics").write_text(content)
        text = self.bad(tmp_path, SUPPORT_EU + 'holidays_ics = ["bad.ics"]')
        assert '[support-eu] holidays_ics[0] "bad.ics": is not a usable iCalendar file' in text

    def test_an_unknown_country(self, tmp_path):
        text = self.bad(tmp_path, SUPPORT_EU + 'country = "XX"')
        assert '[support-eu] country "XX": no public holidays known for it' in text

    def test_an_unknown_subdivision(self, tmp_path):
        text = self.bad(tmp_path, SUPPORT_EU + 'country = "FR"\nsubdivision = "ZZ"')
        assert '[support-eu] subdivision "ZZ": not a subdivision of FR' in text and "BL" in text

    def test_a_subdivision_without_a_country(self, tmp_path):
        text = self.bad(tmp_path, SUPPORT_EU + 'subdivision = "BL"')
        assert '[support-eu] subdivision "BL": needs a country' in text

    def test_a_calendar_with_no_open_interval(self, tmp_path):
        text = self.bad(tmp_path, 'timezone = "Europe/Paris"\nmon = []\nholidays = ["2026-12-25"]')
        assert "[support-eu] mon..sun: no open interval on any day" in text

    def test_a_top_level_value_that_is_not_a_table(self, tmp_path):
        text = self.message(write(tmp_path, 'timezone = "Europe/Paris"\n[a]\ntimezone = "UTC"'))
        assert 'timezone = "Europe/Paris": a value outside any calendar table' in text

    def test_a_file_that_does_not_parse(self, tmp_path):
        text = self.message(write(tmp_path, "[support-eu\ntimezone = 1"))
        assert "does not parse as TOML (" in text

    def test_a_file_that_cannot_be_read(self, tmp_path):
        text = self.message(tmp_path / "nowhere.toml")
        assert "cannot be read (" in text


def _issued() -> dict[str, dict]:
    lines = (json.loads(line) for line in (CASES / "rules-v2.jsonl").read_text().splitlines())
    return {event["id"]: event for event in lines if event["type"] == "promise.issued"}


def _warnings() -> dict[str, dict]:
    text = (CASES / "rules-v2.expected-warnings.jsonl").read_text()
    return {w["promise_id"]: w for w in map(json.loads, text.splitlines())}


def _weekdays(interval: str) -> str:
    return "".join(f'{day} = ["{interval}"]\n' for day in ("mon", "tue", "wed", "thu", "fri"))


def test_a_due_time_centuries_away_is_infinite_at_once():
    """Review finding: within_seconds of 1e12 on a business calendar walked the calendar
    to the year 9999 (about 30 s a call). Beyond ten years of its open time it is
    infinite, computed at once; a long promise on a 24/7 clock stays exact."""
    import time

    from promise_tracker.calendars import load_calendars
    from promise_tracker.streams.clock import run_until
    from promise_tracker.streams.engine import ROUND_THE_CLOCK

    eu = load_calendars(CASES / "calendars.toml")["support-eu"]
    t0 = 1_772_442_000.0
    started = time.perf_counter()
    assert run_until(eu, t0, 1e12, []) == float("inf")
    assert time.perf_counter() - started < 1.0
    eight_years = 8 * 52 * 40 * 3600.0  # 40 business hours a week
    assert run_until(eu, t0, eight_years, []) < float("inf")
    assert run_until(ROUND_THE_CLOCK, t0, 1e12, []) == t0 + 1e12
