# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A study's data out: frames, maps and exports
#
# A worked example of Noctis from a notebook: open a unit of work, check a finder, look at its
# matches as a Polars frame, plot the footprints over the AOI, and export the study.
#
# Open it in Jupyter with `jupytext --to ipynb docs/notebook.py`, or run it as a script:
# `uv run python docs/notebook.py`. Async code runs through `run_sync`, which works both in a
# plain script and inside Jupyter's running loop; in Jupyter you may `await` it directly.
# It needs the `notebook` and `geo` extras (`uv sync --extra notebook --extra geo`) and
# matplotlib. CI runs every cell against a throwaway PostGIS
# (`tests/integration/test_notebook_doc.py`).
#
# Settings come from `ATLAS_DB_*` / `.env`, as everywhere in Noctis. With
# `NOCTIS_FINDER_PK` and `NOCTIS_DREAM_PK` set, the notebook reads that study; without them it
# **writes** a small study of its own first (a dream, a finder, a few scenes): only do that on
# a database you may write to.

# %%
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed; the figure goes to a PNG
import matplotlib.pyplot as plt
import polars as pl
import shapely
from geoalchemy2 import WKTElement

from noctis.exports import export_study
from noctis.finders import CheckedFinder, check_finder
from noctis.frames import matches_frame, study_frame, to_geopandas
from noctis.models import ArchiveItem, Dream, ImageryFinder
from noctis.notebook import open_uow, run_sync
from noctis.study import check_study, link_study

OUT = Path(os.environ.get("NOCTIS_NOTEBOOK_OUT", "."))

# %% [markdown]
# ## A study to look at
#
# A finder over the Bay of Naples for a dream, and a year of scenes on a grid around it:
# some inside the AOI, some touching it, some far away. The link step records the matches,
# exactly as the flow does.

# %%
FINDER_PK = int(os.environ.get("NOCTIS_FINDER_PK", "0"))
DREAM_PK = int(os.environ.get("NOCTIS_DREAM_PK", "0"))


async def seed_a_study() -> tuple[int, int]:
    """A dream, a finder, 100 scenes; then the study's link step, as the flow runs it."""
    async with open_uow() as uow:
        dream = Dream(name="notebook: Bay of Naples")
        finder = ImageryFinder(
            name="Bay of Naples",
            location=WKTElement(shapely.box(14.0, 40.5, 14.6, 40.95).wkt, srid=4326),
            start_date=date(2024, 1, 1),
            end_date=date(2024, 12, 31),
            max_cloud_cover=60,
        )
        scenes = [
            ArchiveItem(
                external_id=f"notebook-{i:03d}",
                collection="sentinel-2-l2a" if i % 3 else "landsat-c2-l2",
                footprint=WKTElement(
                    shapely.box(13.4 + 0.2 * (i % 10), 40.1 + 0.15 * (i // 10),
                                13.9 + 0.2 * (i % 10), 40.5 + 0.15 * (i // 10)).wkt,
                    srid=4326,
                ),
                acquired_at=datetime(2024, 1, 1, 9, 50, tzinfo=UTC) + timedelta(days=3 * i),
                cloud_cover=float((i * 37) % 100),
                gsd=10.0 if i % 3 else 30.0,
                properties={"platform": "sentinel-2a" if i % 2 else "sentinel-2b"},
            )
            for i in range(100)
        ]  # fmt: skip
        uow.session.add_all([dream, finder, *scenes])
        await uow.session.flush()
        finder_id, dream_id = finder.id, dream.id
        await uow.commit()
        study = await check_study(uow, finder_id=finder_id, dream_id=dream_id)
        linked = await link_study(uow, study)
    print(f"ImageryFinder {finder_id} for Dream {dream_id}: {linked.new} lookup rows recorded")
    return finder_id, dream_id


if not (FINDER_PK and DREAM_PK):
    FINDER_PK, DREAM_PK = run_sync(seed_a_study())

# %% [markdown]
# ## Check the finder
#
# The same check as the flow's: a finder the flow would refuse is refused here, with the same
# message. A unit of work rolls back unless committed, so exploring writes nothing.


# %%
async def look_at_the_finder() -> tuple[CheckedFinder, int]:
    async with open_uow() as uow:
        finder = await check_finder(uow, FINDER_PK)
        return finder, await uow.archive.count(finder.criteria)


finder, count = run_sync(look_at_the_finder())
print(f"{finder.name}: {finder.location_type}, {finder.window}, {count} matches now")

# %% [markdown]
# ## Matches as a frame
#
# `matches_frame` runs the match rule (nothing written) and reads the result with connectorx
# into Polars; `study_frame` reads the study's recorded lookup rows, with their coverage of
# the AOI. `await read_matches(...)` and `await read_study(...)` are the same, for async code.

# %%
matches = matches_frame(FINDER_PK)
frame = study_frame(FINDER_PK, DREAM_PK)
assert frame.height == matches.height == count
frame.select("external_id", "collection", "acquired_at", "cloud_cover", "coverage").head()

# %%
by_collection = (
    frame.group_by("collection")
    .agg(
        pl.len().alias("scenes"),
        pl.col("coverage").max().alias("best coverage"),
        pl.col("cloud_cover").mean().round(1).alias("mean cloud cover"),
    )
    .sort("collection")
)
by_collection

# %% [markdown]
# ## Footprints over the AOI
#
# `to_geopandas` turns the frame into a GeoDataFrame (EPSG:4326); the AOI comes from the
# checked finder.

# %%
gdf = to_geopandas(frame)
aoi = shapely.from_wkb(bytes(finder.criteria.location.data))
fig, ax = plt.subplots(figsize=(7, 6))
gdf.plot(ax=ax, column="coverage", cmap="viridis", alpha=0.35, edgecolor="k", legend=True)
ax.plot(*aoi.exterior.xy, color="crimson", linewidth=2, label="AOI")
ax.set_title(f"ImageryFinder {FINDER_PK} for Dream {DREAM_PK}: {len(gdf)} scenes by coverage")
ax.legend(loc="lower left")
fig.savefig(OUT / "notebook-footprints.png", dpi=100)
plt.close(fig)

# %% [markdown]
# ## Export
#
# The same exports as `noctis export`: GeoParquet (GeoPandas, DuckDB and GDAL read it), a STAC
# ItemCollection, GeoJSON, CSV. Large studies stream to the file with flat memory.

# %%
for fmt, name in [("parquet", "study.parquet"), ("stac", "study-items.json")]:
    result = export_study(FINDER_PK, DREAM_PK, fmt=fmt, output=OUT / name)
    print(f"{result.fmt}: {result.rows} rows -> {result.path}")

# %%
import geopandas

back = geopandas.read_parquet(OUT / "study.parquet")
assert back.crs.to_epsg() == 4326 and len(back) == frame.height
back[["external_id", "coverage", "footprint"]].head()
