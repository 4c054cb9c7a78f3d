"""Adding many images at once: files, a zip archive, a folder, or images with a CSV of labels.

Each image is prepared (`dermlens.projects.intake.prepare_image`) and stored on its own, so a bad file
is reported and skipped while the others go in, and a process killed half-way has stored a prefix of
the images, each complete. Tags named by folders or by the CSV are created when missing.
"""

from __future__ import annotations

from collections.abc import Sequence

from dermlens.progress import track
from dermlens.projects.errors import Invalid
from dermlens.projects.intake import ArchiveEntry, display_name, prepare_image
from dermlens.projects.labelling import entry_tags
from dermlens.projects.store import AddedImages, ProjectStore


def import_entries(store: ProjectStore, project_id: int, entries: Sequence[ArchiveEntry], *,
                   tag_ids: Sequence[int] = (), source: str = "upload", labelled_by: str = "",
                   max_pixels: int = 50_000_000, progress: bool = False) -> AddedImages:
    """Store ``entries`` in the project, tagged with ``tag_ids`` plus what their folders or CSV say
    (with a progress bar when ``progress``)."""
    result = AddedImages()
    tagged = entry_tags(entries)
    names = sorted({name for _, tags in tagged for name in tags})
    by_name = {t.name: t.id for t in store.tag_named(project_id, names, create=True)} if names else {}
    for entry, tags in track(tagged, "Uploading", total=len(tagged)) if progress else tagged:
        try:
            image = prepare_image(entry.data, entry.name, max_pixels=max_pixels)
        except Invalid as error:
            result.refused.append((display_name(entry.name), str(error)))
            continue
        ids = list(dict.fromkeys([*tag_ids, *(by_name[t] for t in tags)]))
        image_id, new = store.add_image(project_id, image, source=source, tag_ids=ids, labelled_by=labelled_by)
        (result.added if new else result.duplicates).append(image_id)
    return result
