"""Everything one sandbox holds: the clock, the practices, identity and the gateway."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from xpm_sandbox.gateway import Gateway
from xpm_sandbox.generate import build_practice, new_uuid
from xpm_sandbox.identity import App, Identity, User
from xpm_sandbox.model import Practice

# The sandbox's own app registration: sandbox-only values, documented in the README.
SANDBOX_CLIENT_ID = "SANDBOX0CLIENT0ID0000000000000000"
SANDBOX_CLIENT_SECRET = "sandbox-client-secret-not-for-production"  # noqa: S105
SANDBOX_REDIRECT_URIS = ["http://localhost:8765/callback", "http://127.0.0.1:8765/callback"]


class Clock:
    """Real time plus an offset tests can move forward. Naive UTC, as XPM's dates are."""

    def __init__(self) -> None:
        self.offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.now(UTC).replace(tzinfo=None) + self.offset

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self.offset += timedelta(seconds=seconds)
        return self.now()


@dataclass(frozen=True)
class SeededUsers:
    admin: str = "admin@harbourview.example"
    no_privilege: str = "noprivilege@harbourview.example"
    not_admin: str = "staff@harbourview.example"
    two_practices: str = "partner@harbourview.example"
    third_practice: str = "owner@thirdavenue.example"  # reaches only Third Avenue Advisers


USERS = SeededUsers()


class Sandbox:
    """A practice (plus a second, small one its partner also reaches, and a third of its own owner) with
    users who can or cannot connect them."""

    def __init__(
        self,
        *,
        seed: int = 1,
        clients: int = 200,
        jobs: int = 600,
        staff: int = 12,
        start_year: int = 2022,
    ) -> None:
        self.seed = seed
        self.clock = Clock()
        rng = random.Random(f"tenants:{seed}")
        now = self.clock.now()
        main = build_practice(
            new_uuid(rng),
            "Harbour View Accountants",
            seed=seed,
            clients=clients,
            jobs=jobs,
            staff=staff,
            start_year=start_year,
            now=now,
        )
        second = build_practice(
            new_uuid(rng),
            "Second Street Partners",
            seed=seed,
            clients=20,
            jobs=40,
            staff=4,
            start_year=start_year,
            now=now,
        )
        # A third practice, another firm's branch, reached by its own owner only (its own random
        # stream, so the first two practices and the seeded users stay as they were).
        third = build_practice(
            new_uuid(random.Random(f"tenants:{seed}:third")),
            "Third Avenue Advisers",
            seed=seed,
            clients=12,
            jobs=24,
            staff=3,
            start_year=start_year,
            now=now,
        )
        self.practices: dict[str, Practice] = {p.tenant_id: p for p in (main, second, third)}
        self.main, self.second, self.third = main, second, third
        self.identity = Identity(self.clock.now, {p.tenant_id: p.name for p in self.practices.values()})
        self.gateway = Gateway(self.clock.now)
        self.identity.apps[SANDBOX_CLIENT_ID] = App(
            SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, list(SANDBOX_REDIRECT_URIS)
        )
        staff_ids = list(main.staff)
        seeded = [
            (USERS.admin, "Ada Admin", {main.tenant_id: (True, True)}, staff_ids[0]),
            (USERS.no_privilege, "Noel Noaccess", {main.tenant_id: (True, False)}, staff_ids[1]),
            (USERS.not_admin, "Sam Staff", {main.tenant_id: (False, False)}, staff_ids[2]),
            (
                USERS.two_practices,
                "Pat Partner",
                {main.tenant_id: (True, True), second.tenant_id: (True, True)},
                staff_ids[3],
            ),
        ]
        for email, name, practices, staff_uuid in seeded:
            main.staff[staff_uuid].name, main.staff[staff_uuid].email = name, email
            self.identity.users[email] = User(email, name, new_uuid(rng), dict(practices), staff_uuid)
        owner = next(iter(third.staff))
        third.staff[owner].name, third.staff[owner].email = "Tui Owner", USERS.third_practice
        self.identity.users[USERS.third_practice] = User(
            USERS.third_practice, "Tui Owner", new_uuid(random.Random(f"users:{seed}:third")),
            {third.tenant_id: (True, True)}, owner,
        )  # fmt: skip
