"""GET /metrics: the Prometheus text exposition (no API key, no envelope, not in the contract)."""

from __future__ import annotations

from litestar import MediaType, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException

from orchestrator.api.state import Services


# No key: the body carries counts only, never secrets, and scrapers send no X-API-Key.
# Out of the schema: it is an operations endpoint, not part of the V1 contract.
# On the loop, not a thread: `devices_by_state` reads state the event loop owns.
@get("/metrics", include_in_schema=False, sync_to_thread=False)
def metrics(services: NamedDependency[Services]) -> Response[bytes]:
    """Every metric in the text format Prometheus scrapes."""
    if services.metrics is None:
        # The same envelope 404 as any unknown path: without metrics there is no endpoint.
        raise NotFoundException
    body, content_type = services.metrics.render()
    # As a header, whole: given as media_type, litestar would append a second charset to it.
    return Response(body, media_type=MediaType.TEXT, headers={"content-type": content_type})
