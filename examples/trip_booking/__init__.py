"""Trip booking: car, hotel, flight; when no flight goes there, the hotel and car are cancelled."""
