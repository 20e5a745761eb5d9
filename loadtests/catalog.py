"""The seeded retailers (from ``manage.py seed_demo --keys-file``) and a skewed SKU sampler."""

from __future__ import annotations

import bisect
import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path


class CatalogError(ValueError):
    """The keys file is missing or does not describe any usable retailer."""


class ZipfSampler:
    """Draw items with probability proportional to ``1 / rank ** exponent``.

    With the default exponent 1.07 over 10 000 SKUs the top 1 % of SKUs take
    about half of all views, and the long tail is still visited: the shape
    reported for retail catalogs, and the one that makes a price cache earn its keep.
    """

    def __init__(self, items: list[str], exponent: float) -> None:
        if not items:
            raise CatalogError("a sampler needs at least one item")
        self.items = items
        self._cumulative = list(itertools.accumulate(1.0 / rank**exponent for rank in range(1, len(items) + 1)))
        self._total = self._cumulative[-1]

    def one(self, rng: random.Random) -> str:
        index = bisect.bisect_left(self._cumulative, rng.random() * self._total)
        return self.items[min(index, len(self.items) - 1)]

    def distinct(self, rng: random.Random, count: int) -> list[str]:
        """``count`` different items (fewer if the catalog is smaller), hot ones first in probability."""
        wanted = min(count, len(self.items))
        chosen: dict[str, None] = {}
        attempts = 0
        while len(chosen) < wanted and attempts < wanted * 20:
            chosen[self.one(rng)] = None
            attempts += 1
        if len(chosen) < wanted:  # a tiny catalog dominated by its head: fill from the tail
            chosen.update(dict.fromkeys(item for item in self.items if item not in chosen))
        return list(chosen)[:wanted]


@dataclass(frozen=True)
class Retailer:
    """One seeded retailer as the load sees it."""

    index: int
    name: str
    publishable_key: str
    secret_key: str
    origin: str
    skus: tuple[str, ...]


def retailers_load(path: Path) -> list[Retailer]:
    """Read the keys file written by ``manage.py seed_demo --keys-file PATH``."""
    try:
        rows = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise CatalogError(
            f"{path} does not exist: run `python manage.py seed_demo --retailers N --products M "
            f"--keys-file {path}` against the target first"
        ) from error
    except json.JSONDecodeError as error:
        raise CatalogError(f"{path} is not JSON: {error}") from error
    if not isinstance(rows, list) or not rows:
        raise CatalogError(f"{path} must hold a non-empty list of retailers")
    retailers = []
    for index, row in enumerate(rows):
        try:
            retailers.append(
                Retailer(
                    index=index,
                    name=str(row["retailer"]),
                    publishable_key=str(row["publishable_key"]),
                    secret_key=str(row["secret_key"]),
                    origin=str(row["origin"]),
                    skus=tuple(str(sku) for sku in row["skus"]),
                )
            )
        except (KeyError, TypeError) as error:
            raise CatalogError(f"{path}: retailer #{index} lacks {error}") from error
        if not retailers[-1].skus:
            raise CatalogError(f"{path}: retailer {retailers[-1].name!r} has no SKUs")
    return retailers
