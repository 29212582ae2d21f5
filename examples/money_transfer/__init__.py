"""Money transfer: withdraw, deposit, charge a fee; flaky calls retry, InsufficientFunds unwinds."""
