"""Pages: thin views that parse input, call one domain function, and choose a representation."""
