"""Tenant-schema models of the telephony app."""
