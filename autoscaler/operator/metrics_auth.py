"""Who may read /metrics: anyone (`none`), or, as kube-rbac-proxy does, a caller whose bearer
token the API server authenticates (TokenReview) and authorizes for `get` on the non-resource
URL /metrics (SubjectAccessReview). Answers are cached for a minute per token, so a scrape every
few seconds costs the API server two requests a minute per scraper."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable

from kubernetes_asyncio import client

CACHE_S = 60.0
MODES = ("none", "token-review")


class TokenReviewAuth:
    def __init__(self, api: client.ApiClient, clock: Callable[[], float] = time.monotonic) -> None:
        self.authn = client.AuthenticationV1Api(api)
        self.authz = client.AuthorizationV1Api(api)
        self.clock = clock
        self.cache: dict[str, tuple[float, bool]] = {}
        self.lock = asyncio.Lock()

    async def allowed(self, authorization: str | None, path: str = "/metrics") -> bool:
        """True when the `Authorization: Bearer …` header belongs to a caller allowed to GET `path`."""
        if not authorization or not authorization.startswith("Bearer ") or len(authorization) > 16384:
            return False
        token = authorization.removeprefix("Bearer ").strip()
        key = hashlib.sha256(f"{path}\0{token}".encode()).hexdigest()  # the token itself is not kept
        now = self.clock()
        hit = self.cache.get(key)
        if hit is not None and now - hit[0] < CACHE_S:
            return hit[1]
        async with self.lock:
            verdict = await self._review(token, path)
        if len(self.cache) > 1000:
            self.cache.clear()
        self.cache[key] = (now, verdict)
        return verdict

    async def _review(self, token: str, path: str) -> bool:
        review = await self.authn.create_token_review(
            client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token)))
        status = review.status
        if status is None or not status.authenticated or status.user is None:
            return False
        access = await self.authz.create_subject_access_review(client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=status.user.username, groups=status.user.groups, uid=status.user.uid,
                non_resource_attributes=client.V1NonResourceAttributes(path=path, verb="get"))))
        return bool(access.status is not None and access.status.allowed)
