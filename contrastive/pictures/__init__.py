"""Pictures of a finished run's representation h: nearest neighbours
(`neighbors.py`) and 2-D maps (`maps.py`), drawn with matplotlib's Agg
backend."""

from contrastive.pictures.maps import map_coordinates, write_map  # noqa: F401
from contrastive.pictures.neighbors import pick_queries, write_neighbors  # noqa: F401
