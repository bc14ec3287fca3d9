"""Tests of the per-session byte budget (standard library only, no Docker;
see egress_testing.py): the connections of one session share the latest
budget a decision gave, sessions are independent, and a connection's
bytes leave the count when it ends."""

import unittest

from egress_budget import Budgets
from egress_testing import LOOPBACK, OK_200, ProxyTestCase, allow, read_all, read_exactly


class BudgetsTest(unittest.TestCase):
    def test_a_session_shares_one_budget_and_an_ended_connection_keeps_the_room(self):
        budgets = Budgets()
        first = budgets.join("calc", 100)
        first.spend(60)
        second = budgets.join("calc", 100)
        self.assertIs(first, second)
        self.assertEqual(second.room(), 40)
        other = budgets.join("other", 100)
        self.assertEqual(other.room(), 100)
        budgets.leave(first, 60)  # the server will subtract them from its next budget
        self.assertEqual((second.limit, second.used, second.room()), (40, 0, 40))
        self.assertIs(budgets.join("calc", 500), second)  # the latest decision's budget counts
        self.assertEqual(second.room(), 500)
        budgets.leave(second, 0)
        budgets.leave(second, 0)
        self.assertEqual(list(budgets.sessions), ["other"])  # a session without connections is forgotten
        self.assertEqual(budgets.join("calc", 7).room(), 7)


class SessionBudgetTest(ProxyTestCase):
    def open_tunnel(self):
        connection = self.tunnel("127.0.0.1:%d" % self.origins.echo.server_address[1])
        self.assertEqual(read_exactly(connection, len(OK_200)), OK_200)
        return connection, self.server.next_ask()

    def echo(self, connection, data):
        connection.sendall(data)
        self.assertEqual(read_exactly(connection, len(data)), data)

    def test_connections_of_a_session_share_its_budget_and_other_sessions_are_unaffected(self):
        self.server.configure(LOOPBACK)
        self.server.policy = allow("calc", budget=100)
        first, first_ask = self.open_tunnel()
        second, second_ask = self.open_tunnel()
        self.echo(first, b"a" * 30)  # 60 of the session's 100
        second.sendall(b"b" * 30)  # 30 up, then room for 10 down
        self.assertEqual(read_all(second), b"b" * 10)
        first.sendall(b"c")  # no room left: cut, nothing relayed
        self.assertEqual(read_all(first), b"")
        closed = [self.server.closed(ask["id"]) for ask in (first_ask, second_ask)]
        self.assertEqual([(c["bytes_up"], c["bytes_down"]) for c in closed], [(30, 30), (30, 10)])
        self.assertEqual([c["reason"] for c in closed], ["byte budget reached"] * 2)
        # another session's connection has a budget of its own
        self.server.policy = allow("other", budget=100)
        third, third_ask = self.open_tunnel()
        self.echo(third, b"d" * 45)
        third.close()
        closed = self.server.closed(third_ask["id"])
        self.assertEqual((closed["session"], closed["bytes_up"], closed["bytes_down"]), ("other", 45, 45))
        self.assertIsNone(closed["reason"])

    def test_an_ended_connection_does_not_give_its_bytes_back_to_the_others(self):
        self.server.configure(LOOPBACK)
        self.server.policy = allow("calc", budget=100)
        first, first_ask = self.open_tunnel()
        second, second_ask = self.open_tunnel()
        self.echo(first, b"a" * 20)
        self.echo(second, b"b" * 20)  # 80 of 100
        second.close()
        closed = self.server.closed(second_ask["id"])
        self.assertEqual((closed["bytes_up"], closed["bytes_down"], closed["reason"]), (20, 20, None))
        # the session has 20 left (the server subtracts the 40 from its next budget)
        first.sendall(b"c" * 30)
        self.assertEqual(read_all(first), b"")
        closed = self.server.closed(first_ask["id"])
        self.assertEqual((closed["bytes_up"], closed["bytes_down"], closed["reason"]), (40, 20, "byte budget reached"))

    def test_a_later_decision_with_a_larger_budget_lets_new_bytes_through(self):
        self.server.configure(LOOPBACK)
        self.server.policy = allow("calc", budget=100)
        first, _ = self.open_tunnel()
        self.echo(first, b"a" * 40)  # 80 of 100
        second, second_ask = self.open_tunnel()
        second.sendall(b"b" * 30)  # room for 20 up
        self.assertEqual(read_all(second), b"")
        closed = self.server.closed(second_ask["id"])
        self.assertEqual((closed["bytes_up"], closed["bytes_down"], closed["reason"]), (20, 0, "byte budget reached"))
        # a larger budget (say the user raised it): the session's open
        # connections (80 bytes; the second's 20 left the count) may relay 320 more
        self.server.policy = allow("calc", budget=400)
        third, _ = self.open_tunnel()
        self.echo(third, b"c" * 150)
        self.echo(first, b"d" * 5)  # the connection decided with 100 has the session's new room too

    def test_a_smaller_budget_refuses_new_connections_and_cuts_open_ones(self):
        self.server.configure(LOOPBACK)
        self.server.policy = allow("calc", budget=100)
        first, first_ask = self.open_tunnel()
        self.echo(first, b"a" * 40)  # 80 used
        self.server.policy = allow("calc", budget=50)
        answer = self.exchange(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % self.origins.echo.server_address[1])
        self.assertTrue(answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer)
        self.assertIn(b"byte budget reached", answer)
        closed = self.server.closed(self.server.next_ask()["id"])
        self.assertEqual((closed["allowed"], closed["reason"]), (False, "byte budget reached"))
        self.assertFalse(self.server.connected(closed["id"]))
        first.sendall(b"b")
        self.assertEqual(read_all(first), b"")
        closed = self.server.closed(first_ask["id"])
        self.assertEqual((closed["bytes_up"], closed["bytes_down"], closed["reason"]), (40, 40, "byte budget reached"))
        self.assertEqual(self.origins.echo.connections, 1)


if __name__ == "__main__":
    unittest.main()
