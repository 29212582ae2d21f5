"""Refund batch: 1,000 refunds, 100 a run, the undo plan carried; a late failure reverts all."""
