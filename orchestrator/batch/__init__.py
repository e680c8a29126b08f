"""Application services: the use cases behind the V1 API, written against the ports."""
