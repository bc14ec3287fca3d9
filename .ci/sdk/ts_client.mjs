// The official TypeScript MCP SDK's client against the server over stdio.
//
// Lists the tools, runs Python and Go through sandbox_execute (the SDK's
// Client checks each result's structuredContent against the tool's output
// schema), and reads a file a session wrote in /outputs back as a
// resource; the session is destroyed even when a step fails. Exits
// non-zero on the first mismatch.
//   usage: node ts_client.mjs BINARY SDK_DIR   (SDK_DIR: where .ci/node-tools put the SDK)
import { createRequire } from 'node:module';
import { join } from 'node:path';

const [binary, sdkDir] = process.argv.slice(2);
const require = createRequire(join(sdkDir, 'package.json'));
const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
const { StdioClientTransport } = require('@modelcontextprotocol/sdk/client/stdio.js');
const { AjvJsonSchemaValidator } = require('@modelcontextprotocol/sdk/validation/ajv');

const TOOLS = ['sandbox_execute', 'sandbox_file_ops', 'sandbox_inspect', 'sandbox_install', 'sandbox_job', 'sandbox_security',
  'sandbox_session'];
const timeout = 120_000; // milliseconds, for each request
const SESSION = `sdk-typescript-${process.pid}`;

class Mismatch extends Error {}
function check(condition, what, got) {
    if (!condition) throw new Mismatch(`${what}; got ${JSON.stringify(got)}`);
}

// The SDK's own Ajv validator, counting the results it found valid.
class CountingValidator {
    ajv = new AjvJsonSchemaValidator();
    validated = 0;
    getValidator(schema) {
        const validate = this.ajv.getValidator(schema);
        return (input) => {
            const result = validate(input);
            if (result.valid) this.validated += 1;
            return result;
        };
    }
}

const validator = new CountingValidator();
const client = new Client({ name: 'multilang-sandbox-ci', version: '1' }, { jsonSchemaValidator: validator });

// A tool call the SDK validated, that is no error.
async function call(name, args) {
    const before = validator.validated;
    const result = await client.callTool({ name, arguments: args }, undefined, { timeout });
    check(!result.isError, `${name} ${JSON.stringify(args)} failed`, result.content);
    check(validator.validated === before + 1, `the SDK did not validate ${name}'s structuredContent`, result);
    return result;
}

async function execute(language, code, expected) {
    const result = await call('sandbox_execute', { language, code });
    const output = result.structuredContent;
    check(output.stdout.includes(expected) && output.exit_code === 0, `${language} did not print ${expected}`, output);
    const text = result.content.filter((block) => block.type === 'text').map((block) => block.text).join('');
    check(text.includes(expected), `the ${language} result's text lacks ${expected}`, text);
    return result;
}

async function main() {
    const env = { ...process.env, MULTILANG_SANDBOX_LOG: 'warn' };
    await client.connect(new StdioClientTransport({ command: binary, env, stderr: 'inherit' }), { timeout });
    const server = client.getServerVersion();
    console.error(`ci: TypeScript SDK: initialized with ${server.name} ${server.version}`);

    const { tools } = await client.listTools(undefined, { timeout });
    const names = tools.map((tool) => tool.name).sort();
    check(JSON.stringify(names) === JSON.stringify(TOOLS), 'tools/list is not the seven tools', names);
    check(tools.every((tool) => tool.outputSchema), 'a tool has no output schema', tools);

    const result = await execute('python', 'print(6 * 7)', '42');
    // The check the SDK ran bites: a wrong type in stdout is refused.
    const schema = tools.find((tool) => tool.name === 'sandbox_execute').outputSchema;
    const tampered = validator.ajv.getValidator(schema)({ ...result.structuredContent, stdout: 42 });
    check(!tampered.valid, 'the output schema accepted a number as stdout', tampered);
    await execute('go', 'fmt.Println(6*7)', '42');

    try {
        await call('sandbox_session', { action: 'create', name: SESSION, language: 'python' });
        const code = "open('/outputs/hello.txt', 'w').write('hello from the TypeScript SDK\\n')";
        await call('sandbox_execute', { language: 'python', code, session: SESSION });
        const uri = `sandbox://sessions/${SESSION}/outputs/hello.txt`;
        const listed = (await client.listResources(undefined, { timeout })).resources.map((resource) => resource.uri);
        check(listed.includes(uri), `resources/list lacks ${uri}`, listed);
        const { contents } = await client.readResource({ uri }, { timeout });
        const texts = contents.map((content) => content.text);
        check(JSON.stringify(texts) === JSON.stringify(['hello from the TypeScript SDK\n']), `resources/read ${uri} is not the file's text`, contents);
        await call('sandbox_session', { action: 'destroy', name: SESSION });
    } catch (error) {
        // The failure that brought us here is the one to report.
        await client
            .callTool({ name: 'sandbox_session', arguments: { action: 'destroy', name: SESSION } }, undefined, { timeout })
            .catch((cleanup) => console.error(`ci: TypeScript SDK: could not destroy session ${SESSION}: ${cleanup}`));
        throw error;
    }
    console.error(
        `ci: TypeScript SDK: ${tools.length} tools; Python and Go printed 42 (${validator.validated} results validated ` +
            "against their output schemas); a session's /outputs/hello.txt listed and read as a resource",
    );
}

try {
    await main();
} catch (error) {
    console.error(`ci: TypeScript SDK: ${error instanceof Mismatch ? error.message : error.stack}`);
    process.exitCode = 1;
} finally {
    await client.close();
}
