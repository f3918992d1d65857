"""The version of autounet (one place; the package, reports, exports and manifests read it)."""

__version__ = "0.1.0"
