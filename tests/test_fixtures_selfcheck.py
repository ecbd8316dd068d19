"""The in-house pytest-tornado fixtures work against a real server on a free port."""

import pytest
import tornado.httpclient
import tornado.web


class _Hello(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("hi")


@pytest.fixture
def app() -> tornado.web.Application:
    return tornado.web.Application([(r"/", _Hello)])


@pytest.mark.gen_test(timeout=5)
async def test_real_server_answers(
    http_client: tornado.httpclient.AsyncHTTPClient, base_url: str
) -> None:
    response = await http_client.fetch(base_url + "/")
    assert response.body == b"hi"
