// Dockerfile checks for the deploy tests: dockerfile-utils lint plus the project's own policy
// (docs/deploying.md, "Offline checks").
import { DockerfileParser } from 'dockerfile-ast';
import type { Instruction } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';

/** LSP DiagnosticSeverity.Error */
const SEVERITY_ERROR = 1;

export interface Finding {
  rule: string;
  line: number;
  message: string;
}

/** dockerfile-utils diagnostics at error severity (syntax and semantic errors). */
export function lintErrors(content: string): Finding[] {
  return validate(content)
    .filter((d) => d.severity === SEVERITY_ERROR)
    .map((d) => ({
      rule: 'lint',
      line: d.range.start.line + 1,
      message: typeof d.message === 'string' ? d.message : d.message.value,
    }));
}

interface Stage {
  from: Instruction;
  image: string;
  name: string | null;
  instructions: Instruction[];
}

function stagesOf(content: string): Stage[] {
  const dockerfile = DockerfileParser.parse(content);
  const stages: Stage[] = [];
  for (const instruction of dockerfile.getInstructions()) {
    const keyword = instruction.getKeyword();
    if (keyword === 'FROM') {
      const args = instruction.getArguments().map((a) => a.getValue());
      const asIndex = args.findIndex((a) => a.toUpperCase() === 'AS');
      const positional = args.filter((a) => !a.startsWith('--'));
      stages.push({
        from: instruction,
        image: positional[0] ?? '',
        name: asIndex >= 0 ? (args[asIndex + 1] ?? null) : null,
        instructions: [],
      });
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return stages;
}

const DIGEST = /@sha256:[0-9a-f]{64}$/;

/** Splits `registry/name:tag@sha256:...` into name, tag and digest. */
export function parseImageRef(ref: string): { name: string; tag: string | null; digest: string | null } {
  const at = ref.indexOf('@');
  const digest = at >= 0 ? ref.slice(at + 1) : null;
  const rest = at >= 0 ? ref.slice(0, at) : ref;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.indexOf(':', lastSlash + 1);
  return colon >= 0
    ? { name: rest.slice(0, colon), tag: rest.slice(colon + 1), digest }
    : { name: rest, tag: null, digest };
}

/**
 * The C library family an image is built on, from its name and tag; null when unknown.
 * Debian 12 (bookworm) is glibc; Alpine is musl.
 */
export function libcFamily(ref: string): string | null {
  const { name, tag } = parseImageRef(ref);
  const text = `${name}:${tag ?? ''}`.toLowerCase();
  if (/alpine/.test(text)) return 'musl';
  if (/bookworm|debian12/.test(text)) return 'glibc/debian12';
  if (/trixie|debian13/.test(text)) return 'glibc/debian13';
  if (/bullseye|debian11/.test(text)) return 'glibc/debian11';
  if (/ubi9|el9/.test(text)) return 'glibc/el9';
  return null;
}

function line(instruction: Instruction): number {
  return instruction.getRange().start.line + 1;
}

/** Is an instruction's argument list a JSON array (exec form)? */
function isExecForm(instruction: Instruction): boolean {
  const raw = (instruction.getRawArgumentsContent() ?? '').trim();
  if (!raw.startsWith('[')) return false;
  try {
    const parsed: unknown = JSON.parse(raw);
    return Array.isArray(parsed) && parsed.length > 0 && parsed.every((p) => typeof p === 'string');
  } catch {
    // Not JSON: shell form, which is what the answer says; the policy reports the instruction itself.
    return false;
  }
}

/** The project's Dockerfile policy; an empty list means the Dockerfile passes. */
export function dockerfilePolicy(content: string): Finding[] {
  const findings: Finding[] = [];
  const add = (rule: string, at: Instruction | null, message: string) =>
    findings.push({ rule, line: at ? line(at) : 0, message });
  const stages = stagesOf(content);
  const stageNames = new Set(stages.map((s) => s.name).filter((n): n is string => n !== null));
  const final = stages.at(-1);
  if (!final) {
    add('stages', null, 'no FROM instruction');
    return findings;
  }
  if (stages.length < 2) add('multi-stage', final.from, 'the image must be built in more than one stage');

  // Every FROM names an external image pinned by a versioned tag AND a sha256 digest
  // (FROM <earlier stage> is allowed).
  for (const stage of stages) {
    if (stageNames.has(stage.image)) continue;
    const { name, tag, digest } = parseImageRef(stage.image);
    if (stage.image.includes('$')) add('pinned-from', stage.from, `FROM ${stage.image}: no variables in base images`);
    if (!digest || !DIGEST.test(`@${digest}`)) {
      add('pinned-from', stage.from, `FROM ${stage.image}: pin the base image by @sha256 digest`);
    }
    if (!tag || tag === 'latest' || !/\d/.test(`${name}:${tag}`)) {
      add('pinned-from', stage.from, `FROM ${stage.image}: use a versioned tag (not latest) next to the digest`);
    }
  }

  // Same C library in every stage as in the final one (native argon2 package is per libc).
  const resolveExternal = (stage: Stage, seen = new Set<string>()): string => {
    const parent = stages.find((s) => s.name === stage.image);
    if (parent && !seen.has(stage.image)) return resolveExternal(parent, seen.add(stage.image));
    return stage.image;
  };
  const finalFamily = libcFamily(resolveExternal(final));
  if (finalFamily === null) {
    add('same-libc', final.from, `FROM ${final.image}: cannot tell its C library (want e.g. bookworm/debian12)`);
  }
  for (const stage of stages.slice(0, -1)) {
    const family = libcFamily(resolveExternal(stage));
    if (family !== finalFamily) {
      add(
        'same-libc',
        stage.from,
        `stage ${stage.name ?? stage.image} is ${family ?? 'unknown'} but the runtime is ${finalFamily ?? 'unknown'}`,
      );
    }
  }

  const all = stages.flatMap((s) => s.instructions);
  const runs = all.filter((i) => i.getKeyword() === 'RUN').map((i) => i.getArgumentsContent() ?? '');
  if (!runs.some((r) => /\bnpm\s+(ci|clean-install)\b/.test(r))) {
    add('npm-ci', null, 'dependencies must be installed with `npm ci` (lockfile exact)');
  }
  for (const i of all.filter((x) => x.getKeyword() === 'RUN')) {
    if (/\bnpm\s+(install|i|add)\b/.test(i.getArgumentsContent() ?? '')) {
      add('npm-ci', i, 'use `npm ci`, not `npm install`');
    }
  }

  // Final stage: numeric non-root USER (runAsNonRoot cannot check names).
  const users = final.instructions.filter((i) => i.getKeyword() === 'USER');
  const lastUser = users.at(-1);
  if (!lastUser) {
    add('numeric-user', final.from, 'the final stage must set USER to a numeric, non-zero uid');
  } else {
    const value = (lastUser.getArgumentsContent() ?? '').trim();
    const [uid = '', gid] = value.split(':');
    if (!/^\d+$/.test(uid) || Number(uid) === 0 || (gid !== undefined && !/^\d+$/.test(gid))) {
      add('numeric-user', lastUser, `USER ${value}: must be numeric uid[:gid] with uid != 0`);
    }
  }

  const cmds = final.instructions.filter((i) => i.getKeyword() === 'CMD');
  const entrypoints = final.instructions.filter((i) => i.getKeyword() === 'ENTRYPOINT');
  if (cmds.length === 0 && entrypoints.length === 0) add('exec-form', final.from, 'the final stage needs a CMD');
  for (const i of [...cmds, ...entrypoints]) {
    if (!isExecForm(i)) add('exec-form', i, `${i.getKeyword()} must be exec form (a JSON array): no shell at run time`);
  }

  for (const i of all.filter((x) => x.getKeyword() === 'HEALTHCHECK')) {
    add('no-healthcheck', i, 'no HEALTHCHECK: Kubernetes probes check health');
  }
  for (const i of all.filter((x) => x.getKeyword() === 'ADD')) {
    const args = i
      .getArguments()
      .map((a) => a.getValue())
      .filter((a) => !a.startsWith('--'));
    if (args.slice(0, -1).some((a) => /^[a-z][a-z0-9+.-]*:\/\//i.test(a) || a.startsWith('git@'))) {
      add('no-add-url', i, 'ADD of a URL: fetch in a pinned, verified way instead');
    }
  }
  // Run-time needs no shell: the final stage runs no RUN with the shell form either.
  for (const i of final.instructions.filter((x) => x.getKeyword() === 'RUN')) {
    if (!isExecForm(i)) add('no-shell-runtime', i, 'the final stage has no shell: no shell-form RUN there');
  }
  return findings;
}
