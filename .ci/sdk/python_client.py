"""The official Python MCP SDK's client against the server over stdio.

Lists the tools, runs Python and Go through sandbox_execute (the SDK checks
each result's structuredContent against the tool's output schema), and
reads a file a session wrote in /outputs back as a resource; the session is
destroyed even when a step fails. Exits non-zero on the first mismatch.
    usage: python_client.py BINARY
"""

import os
import sys

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client

TOOLS = {"sandbox_execute", "sandbox_session", "sandbox_file_ops", "sandbox_install", "sandbox_inspect", "sandbox_security",
         "sandbox_job"}
TIMEOUT = 120  # seconds, for each request (the session's read timeout)
SESSION = f"sdk-python-{os.getpid()}"


class Mismatch(Exception):
    pass


def check(condition, what, got):
    if not condition:
        raise Mismatch(f"{what}; got {got!r}")


class CountingSession(ClientSession):
    """Counts the results the SDK validated against an output schema."""

    validated = 0

    async def validate_tool_result(self, name, result):
        await super().validate_tool_result(name, result)
        self.validated += 1


async def call(session, tool, arguments):
    """A tool call the SDK validated, that is no error."""
    before = session.validated
    result = await session.call_tool(tool, arguments, read_timeout_seconds=TIMEOUT)
    check(not result.is_error, f"{tool} {arguments} failed", result.content)
    check(session.validated == before + 1, f"the SDK did not validate {tool}'s structuredContent", result)
    return result


async def execute(session, language, code, expected):
    result = await call(session, "sandbox_execute", {"language": language, "code": code})
    output = result.structured_content
    check(expected in output["stdout"] and output["exit_code"] == 0, f"{language} did not print {expected!r}", output)
    text = "".join(block.text for block in result.content if block.type == "text")
    check(expected in text, f"the {language} result's text lacks {expected!r}", text)
    return result


async def destroy_quietly(session):
    """Destroys the session after a failure, saying so when that fails too."""
    try:
        await session.call_tool("sandbox_session", {"action": "destroy", "name": SESSION}, read_timeout_seconds=TIMEOUT)
    except Exception as error:  # the failure that brought us here is the one to report
        print(f"ci: Python SDK: could not destroy session {SESSION}: {error!r}", file=sys.stderr)


async def main(binary):
    env = dict(os.environ, MULTILANG_SANDBOX_LOG="warn")
    server = StdioServerParameters(command=binary, env=env)
    async with stdio_client(server) as (read, write), CountingSession(read, write, read_timeout_seconds=TIMEOUT) as session:
        init = await session.initialize()
        print(f"ci: Python SDK: initialized with {init.server_info.name} {init.server_info.version}", file=sys.stderr)

        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        check(set(tools) == TOOLS, "tools/list is not the seven tools", sorted(tools))
        check(all(tool.output_schema for tool in tools.values()), "a tool has no output schema", tools)

        result = await execute(session, "python", "print(6 * 7)", "42")
        # The check the SDK ran bites: a wrong type in stdout is refused.
        tampered = result.model_copy(update={"structured_content": {**result.structured_content, "stdout": 42}})
        try:
            await session.validate_tool_result("sandbox_execute", tampered)
        except RuntimeError:
            pass
        else:
            raise Mismatch("the output schema accepted a number as stdout")
        await execute(session, "go", "fmt.Println(6*7)", "42")

        try:
            await call(session, "sandbox_session", {"action": "create", "name": SESSION, "language": "python"})
            code = "open('/outputs/hello.txt', 'w').write('hello from the Python SDK\\n')"
            await call(session, "sandbox_execute", {"language": "python", "code": code, "session": SESSION})
            uri = f"sandbox://sessions/{SESSION}/outputs/hello.txt"
            listed = [str(resource.uri) for resource in (await session.list_resources()).resources]
            check(uri in listed, f"resources/list lacks {uri}", listed)
            contents = (await session.read_resource(uri)).contents
            texts = [getattr(content, "text", None) for content in contents]
            check(texts == ["hello from the Python SDK\n"], f"resources/read {uri} is not the file's text", contents)
            await call(session, "sandbox_session", {"action": "destroy", "name": SESSION})
        except BaseException:
            await destroy_quietly(session)
            raise
        print(
            f"ci: Python SDK: {len(tools)} tools; Python and Go printed 42 ({session.validated} results validated "
            "against their output schemas); a session's /outputs/hello.txt listed and read as a resource",
            file=sys.stderr,
        )


if __name__ == "__main__":
    try:
        anyio.run(main, sys.argv[1])
    except BaseException as error:
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]  # the SDK's task groups wrap it
        if not isinstance(error, Mismatch):
            raise
        sys.exit(f"ci: Python SDK: {error}")
