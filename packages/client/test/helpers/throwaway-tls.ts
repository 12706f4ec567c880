/** TLS material for client tests: a throwaway CA, a certificate for 127.0.0.1 it signed, and another CA. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A throwaway CA and a certificate for 127.0.0.1 signed by it, made with openssl. */
export function throwawayTls(): { caPem: string; keyPem: string; certPem: string; otherCaPem: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-client-tls-'));
  const sh = (cmd: string): void => void execFileSync('bash', ['-c', cmd], { cwd: dir, stdio: 'ignore' });
  sh('openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=test-ca');
  sh('openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 1 -subj /CN=other-ca');
  sh('openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1');
  sh(
    'printf "subjectAltName=IP:127.0.0.1" > ext.cnf && openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 1 -extfile ext.cnf',
  );
  const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
  const out = { caPem: read('ca.pem'), keyPem: read('srv.key'), certPem: read('srv.pem'), otherCaPem: read('other.pem') };
  rmSync(dir, { recursive: true, force: true });
  return out;
}
