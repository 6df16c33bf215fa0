"""Creator: each request's export created, or its id from state adopted, and the exports
created without their id found in the list."""

from __future__ import annotations

import logging
import typing as t

from tap_avicenna.exports.job import ExportJob, ExportRequest, ListedExport
from tap_avicenna.exports.listing import ExportList
from tap_avicenna.exports.matcher import Claims, identify, resumable
from tap_avicenna.exports.policy import RetryPolicy
from tap_avicenna.exports.repository import ExportRepository
from tap_avicenna.exports.stats import RunnerStats

LOGGER = logging.getLogger("tap-avicenna.exports")


class Creator:
    """Makes the run's exports and knows which listed ones are the run's (`Claims`)."""

    def __init__(
        self,
        repo: ExportRepository,
        exports: ExportList,
        policy: RetryPolicy,
        stats: RunnerStats,
        clock: t.Callable[[], float],
    ) -> None:
        self.repo = repo
        self.exports = exports
        self.policy = policy
        self.stats = stats
        self.clock = clock
        self.claims = Claims()
        self._with_id: set[int] = set()  # lanes whose last create answered an id

    def start(
        self,
        request: ExportRequest,
        attempt: int,
        *,
        lane: int,
        resume_id: int | None,
        pending: list[ExportJob],
    ) -> ExportJob:
        """The export `resume_id` (from state) while the list shows it may be resumed,
        else a new export of the request (`pending`: the exports pending now)."""
        job = self._resume(request, attempt, lane, resume_id) or self._create(
            request, attempt, lane, pending
        )
        if job.export_id is not None:
            self.claims.claimed.add(job.export_id)
        return job

    def _resume(
        self, request: ExportRequest, attempt: int, lane: int, export_id: int | None
    ) -> ExportJob | None:
        if export_id is None:
            return None
        listed, why = resumable(request, export_id, self.exports.snapshot or [], self.claims)
        if listed is None:
            LOGGER.info(
                "Export #%s from state is no longer usable (%s); creating a new one",
                export_id,
                why,
            )
            return None
        self.stats.resumed += 1
        job = ExportJob(
            request,
            attempt,
            export_id,
            lane=lane,
            created_at=self.clock(),
            label=listed.label,
            resumed=True,
        )
        LOGGER.info("Resuming %s from state (status %s)", job.name, listed.label)
        return job

    def _create(
        self, request: ExportRequest, attempt: int, lane: int, pending: list[ExportJob]
    ) -> ExportJob:
        known = frozenset(
            self.exports.known | {j.export_id for j in pending if j.export_id is not None}
        )
        created = self.repo.create(request)
        self.stats.created += 1
        if created.export_id is None and created.ref is None:
            self._with_id.discard(lane)
        else:
            self._with_id.add(lane)
        job = ExportJob(
            request,
            attempt,
            created.export_id,
            lane=lane,
            created_at=self.clock(),
            known_before=known,
            ref=created.ref,
        )
        LOGGER.info(
            "Created %s (attempt %d/%d); %d pending",
            job.name,
            attempt,
            self.policy.attempts,
            len(pending) + 1,
        )
        return job

    def creatable(self, pending: list[ExportJob]) -> t.Callable[[int], bool]:
        """Which lanes may create now. While an export created without id is still to
        be found, or was taken by creation order and its file is still to be proven (it
        is downloaded as soon as it is ready, whatever the budget: it holds no one for
        long), only lanes whose creates answer with an id: a create without one would
        make two exports that only creation order tells apart."""
        proving = any((job.export_id is None and job.ref is None) or job.guessed for job in pending)
        return lambda lane: not proving or lane in self._with_id

    def settle(self, listing: list[ListedExport], pending: list[ExportJob]) -> set[int]:
        """Give the orphans their exports in a new list snapshot; the ids pending
        exports hold (`taken` for `find`)."""
        self.claims.settle_orphans(listing)
        return {job.export_id for job in pending if job.export_id is not None}

    def find(self, job: ExportJob, listing: list[ListedExport], taken: set[int]) -> int | None:
        """The id of the export of a create answered without its list key, once the list
        shows it (`identify`): set on the job, and claimed."""
        found = identify(
            job.request,
            listing,
            self.claims,
            known_before=job.known_before,
            ref=job.ref,
            taken=taken,
        )
        if found is None:
            return None
        job.export_id, job.guessed = found.listed.export_id, found.guessed
        taken.add(job.export_id)
        self.claims.claimed.add(job.export_id)
        how = "the create answer had no id" if job.ref is None else f"id {job.ref}"
        if job.guessed:
            how += "; by creation order: its file is checked before use"
        LOGGER.info("Found %s in the export list (%s)", job.name, how)
        return job.export_id

    def orphan(self, job: ExportJob) -> None:
        """A create without id given up before its export was found (timed out, or its
        lane dropped): its export, when it shows, is no other request's."""
        if job.ref is None and job.export_id is None:
            self.claims.orphans.append(job.known_before)

    def release(self, job: ExportJob) -> None:
        """The export's file is not its request's: it is never looked at again (and a
        guessed one's own export is still to show)."""
        assert job.export_id is not None
        self.claims.rejected.add(job.export_id)
        if job.guessed:
            self.claims.orphans.append(job.known_before)
