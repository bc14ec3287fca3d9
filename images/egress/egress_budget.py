"""Byte budgets shared by the connections of one session. The server's
decision gives the session's remaining budget as the server knows it (its
byte budget less the bytes of the connections already reported `closed`);
the proxy counts the bytes of the session's connections that are still
open, and every one of them may relay only while that count is below the
latest budget. A connection that ends takes its bytes out of the count and
out of the budget alike (the server subtracts them once it reads the
`closed`), so the room left to the others does not change. The spec is
the docstring of egress_proxy.py."""


class SessionBudget:
    """One session's share: `limit` (the latest decision's budget, less the
    bytes of the session's connections that ended since) and `used` (bytes
    relayed by its open connections)."""

    def __init__(self, name):
        self.name = name
        self.limit = 0
        self.used = 0
        self.members = 0  # connections holding this share

    def room(self):
        """Bytes the session's open connections may still relay (0 or less:
        none)."""
        return self.limit - self.used

    def spend(self, count):
        self.used += count


class Budgets:
    """The shares of the sessions that have connections, by session name."""

    def __init__(self):
        self.sessions = {}

    def join(self, session, budget):
        """The share of `session` for a connection just allowed with
        `budget` (which becomes the session's latest budget)."""
        share = self.sessions.get(session)
        if share is None:
            share = self.sessions[session] = SessionBudget(session)
        share.limit = budget
        share.members += 1
        return share

    def leave(self, share, relayed):
        """A connection of `share` ended after relaying `relayed` bytes: they
        leave the open count, and the budget, which the server will lower
        by them once it reads the connection's `closed`."""
        share.used -= relayed
        share.limit -= relayed
        share.members -= 1
        if share.members <= 0 and self.sessions.get(share.name) is share:
            del self.sessions[share.name]
