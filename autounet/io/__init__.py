"""Reading and writing images (geometry kept), dataset.json, finding and verifying a raw dataset's
cases, and atomic writes."""
