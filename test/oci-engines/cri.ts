// A CRI v1 client over containerd's gRPC socket, as kubelet talks to it: the RuntimeService and ImageService of
// the Kubernetes protocol definition in ../shared/cri/api.proto (beside the repository), each call a promise.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ROOT } from '../../bench/oci-engines.ts';

/** Where the CRI protocol definition lives: shared/ beside the repository (the lead's checkout and CI alike). */
export const CRI_PROTO = join(ROOT, '../shared/cri/api.proto');

/** A CRI call: the request object in, the response object out (field names as in api.proto). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Call = (request: Record<string, unknown>) => Promise<any>;

/** The two CRI services kubelet uses, by method name (RunPodSandbox, CreateContainer, ExecSync, ...). */
export interface CriClient {
  runtime: Record<string, Call>;
  image: Record<string, Call>;
  close(): void;
}

/** Connects to the CRI plugin of the containerd listening on `socket`. */
export function criClient(socket: string): CriClient {
  if (!existsSync(CRI_PROTO)) throw new Error(`the CRI protocol definition is missing: ${CRI_PROTO}`);
  const def = protoLoader.loadSync(CRI_PROTO, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const v1 = (grpc.loadPackageDefinition(def) as any).runtime.v1;
  const clients: grpc.Client[] = [];
  const wrap = (Service: typeof grpc.Client): Record<string, Call> => {
    const client = new Service(`unix://${socket}`, grpc.credentials.createInsecure());
    clients.push(client);
    return new Proxy({}, {
      get: (_target, name: string) => (request: Record<string, unknown>) => new Promise((resolve, reject) => {
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        const method = (client as any)[name];
        if (typeof method !== 'function') {
          reject(new Error(`no CRI method ${name}`));
          return;
        }
        method.call(client, request, { deadline: Date.now() + 120000 }, (err: grpc.ServiceError | null, res: unknown) => {
          if (err) reject(new Error(`${name}: ${err.details || err.message}`));
          else resolve(res);
        });
      }),
    });
  };
  return {
    runtime: wrap(v1.RuntimeService),
    image: wrap(v1.ImageService),
    close: () => clients.forEach((c) => c.close()),
  };
}
