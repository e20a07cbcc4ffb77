"""What is decided, and publishing it: contracts, data, the index, bundles, projects."""
