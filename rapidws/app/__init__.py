"""The demo chat: ``rapidws serve`` (see :mod:`rapidws.app.chat`)."""
