"""Fan-out: book N rooms in parallel; if one fails, unwind what was (or may have been) booked."""
