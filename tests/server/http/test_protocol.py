from server.http.protocol import _CoalescingTransport


class _Recorder:
    def __init__(self):
        self.writes = []
        self.closed = False

    def write(self, data):
        self.writes.append(bytes(data))

    def close(self):
        self.closed = True

    def get_extra_info(self, name):
        return ("127.0.0.1", 1)


def test_head_and_body_leave_in_one_write():
    rec = _Recorder()
    t = _CoalescingTransport(rec)
    t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert rec.writes == []
    t.write(b"{}")
    assert rec.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    assert t.get_extra_info("peername") == ("127.0.0.1", 1)


def test_continue_is_not_held_and_close_flushes():
    rec = _Recorder()
    t = _CoalescingTransport(rec)
    t.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert rec.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    t.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    t.close()
    assert rec.writes[-1] == b"HTTP/1.1 204 No Content\r\n\r\n" and rec.closed
