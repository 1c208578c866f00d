// The node flags of src/node-flags.ts are the ones the image and `npm start` run the service with, and
// they configure what they claim (V8's young generation). The last CMD and ENTRYPOINT are the final stage's.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DockerfileParser } from 'dockerfile-ast';
import { NODE_FLAGS } from '../../src/node-flags.js';
import { projectRoot } from '../helpers/deploy/render.js';

t.test('the image runs the service with the flags', async (t) => {
  const instructions = DockerfileParser.parse(readFileSync(join(projectRoot, 'Dockerfile'), 'utf8')).getInstructions();
  const cmd = instructions.filter((i) => i.getKeyword() === 'CMD').at(-1);
  const exec = JSON.parse(cmd?.getArgumentsContent() ?? 'null') as unknown;
  t.same(exec, [...NODE_FLAGS, 'dist/src/main.js'], 'CMD: the flags, then the service');
  const entry = instructions.filter((i) => i.getKeyword() === 'ENTRYPOINT').at(-1);
  t.same(
    JSON.parse(entry?.getArgumentsContent() ?? 'null'),
    ['/nodejs/bin/node'],
    'ENTRYPOINT is node, so CMD is its arguments',
  );
});

t.test('npm start runs the service with the flags', async (t) => {
  const pkg = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  t.equal(pkg.scripts['start'], ['node', ...NODE_FLAGS, 'dist/src/main.js'].join(' '));
});

t.test('the flags give a young generation of 16 MiB semi-spaces from the start', async (t) => {
  const newSpace = (flags: readonly string[]) =>
    Number(
      execFileSync(
        process.execPath,
        [
          ...flags,
          '-e',
          'process.stdout.write(String(require("v8").getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size))',
        ],
        { encoding: 'utf8' },
      ),
    );
  const plain = newSpace([]);
  const flagged = newSpace(NODE_FLAGS);
  t.ok(flagged >= 16 * 2 ** 20, `new space with the flags: ${flagged} bytes`);
  t.ok(flagged >= 4 * plain, `without them node starts at ${plain} bytes`);
});
