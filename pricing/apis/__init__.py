"""The HTTP API of pricing (DRF), one module per resource; the price lookups live in ``pricing.hotpath``."""
