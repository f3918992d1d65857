"""Reading and writing images, dataset.json and the raw dataset layout."""
