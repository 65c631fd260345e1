"""The model catalog: lines, models, variants, input contracts, prices and lifecycle."""

from imagegate.catalog.registry import Catalog, CatalogError, load_catalog
from imagegate.catalog.schema import ActionName, ModelSpec, Variant

__all__ = ["ActionName", "Catalog", "CatalogError", "ModelSpec", "Variant", "load_catalog"]
