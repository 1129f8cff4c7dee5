"""Which earlier release a rollback returns to."""

from podku import apps, releases
from podku.errors import UsageError
from podku.image import build


def rollback_target(app: apps.App, wanted: int | None) -> releases.Release:
    """The release named, or else the newest one before the live one that once served."""
    if app.live_release is None:
        raise UsageError(f"{app.name} has not been deployed yet: nothing to roll back to")
    if wanted is None:
        earlier = [r for r in releases.all_of(app.name)
                   if r.id < app.live_release and releases.was_live(r)]
        if not earlier:
            raise UsageError(f"{app.name} has no earlier release to roll back to")
        target = earlier[0]
    else:
        target = releases.load(app.name, wanted)
        if not releases.was_live(target):
            raise UsageError(f"release {wanted} of {app.name} never served ({target.outcome}): not a rollback target")
    if target.id == app.live_release:
        raise UsageError(f"release {target.id} is already live")
    if not build.image_exists(target.image):
        raise UsageError(f"the image of release {target.id} was pruned: it cannot be rolled back to")
    return target
