"""The release, for the honest User-Agent every outbound call carries (`common.http.USER_AGENT`)."""

__version__ = "0.1.0"
