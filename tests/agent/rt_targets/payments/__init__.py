"""A package the blocklist tests close (``payments``, ``payments/charge.py``)."""
