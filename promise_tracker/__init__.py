"""promise-tracker: tells a business, in real time, when it breaks a promise to a customer."""
