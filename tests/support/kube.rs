//! A real Kubernetes control plane for tests, started the way controller-runtime's envtest starts one:
//! etcd and kube-apiserver as plain processes on loopback, built from Go modules by `scripts/setup`
//! (`scripts/build-kube-testbed`, pinned in `tests/kube-testbed/`), and optionally kube-controller-manager.
//! Nothing here is a stand-in: the API server validates objects against the real CRD schemas (and their CEL
//! rules), authorizes with RBAC, signs service-account tokens (TokenRequest works) and writes an audit log.
//!
//! **No kubelet runs, so no pod ever starts.** Deployments, Jobs and CronJobs are stored and validated but
//! never run; the CNPG operator cannot run either. Velero runs out of the cluster as a plain process
//! ([`Velero`]), which is enough for it to back up and restore API objects for real.
//!
//! - [`KubeTestBed::start`]: its own CA, a serving certificate for 127.0.0.1/localhost, an admin client
//!   certificate in `system:masters`, a service-account signing key, an audit policy logging every request
//!   at Metadata level; `--endpoint-reconciler-type=none` (a loopback advertise address is refused otherwise).
//!   The CRDs of Velero (from `velero install --crds-only`), CNPG and the Barman Cloud plugin
//!   (`tests/fixtures/crds/`) are installed and Established before it returns.
//! - With [`KubeOptions::controller_manager`], kube-controller-manager runs too (`--leader-elect=false
//!   --secure-port=0`): namespaces then finish deleting and get their `default` ServiceAccount. Without
//!   it, a deleted namespace stays Terminating.
//! - [`Velero`]: `velero server` with velero-plugin-for-aws against a harness S3 server.
//!
//! Certificates and keys are made with the `openssl` command (Debian's `openssl` package). Binaries come
//! from `OPENOVA_KUBE_BIN` (default `/opt/openova/bin/kube`); a missing one fails the test with the command
//! that installs it. Every process runs in its own process group, killed with the bed when it is dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::{S3Server, free_port, kill_process_group, poll, tail};

/// Where `scripts/build-kube-testbed` puts the binaries.
pub fn bin_dir() -> PathBuf {
    std::env::var_os("OPENOVA_KUBE_BIN")
        .map_or_else(|| PathBuf::from("/opt/openova/bin/kube"), PathBuf::from)
}

/// The path of test-bed binary `name`; panics with what to run when it is not built.
pub fn binary(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: the Kubernetes test bed is built by `scripts/setup` (scripts/build-kube-testbed); \
         OPENOVA_KUBE_BIN points elsewhere",
        p.display()
    );
    p
}

#[derive(Debug, Clone, Copy, Default)]
pub struct KubeOptions {
    /// Also run kube-controller-manager (namespace deletion, garbage collection, default ServiceAccounts).
    pub controller_manager: bool,
}

/// A process of the bed: killed with its process group when dropped.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        kill_process_group(self.child.id());
        let _ = self.child.wait();
    }
}

/// A running etcd + kube-apiserver (+ kube-controller-manager), torn down on drop.
pub struct KubeTestBed {
    // Dropped in reverse order of start (fields drop in declaration order: newest first).
    procs: Vec<Proc>,
    port: u16,
    etcd_url: String,
    dir: TempDir,
}

impl Drop for KubeTestBed {
    fn drop(&mut self) {
        while let Some(p) = self.procs.pop() {
            drop(p);
        }
    }
}

impl KubeTestBed {
    /// Starts the bed and installs the CRDs.
    pub fn start(opts: KubeOptions) -> KubeTestBed {
        let dir = tempfile::Builder::new()
            .prefix("openova-kube-")
            .tempdir()
            .expect("temporary directory for the Kubernetes test bed");
        let mut bed = KubeTestBed {
            procs: Vec::new(),
            port: 0,
            etcd_url: String::new(),
            dir,
        };
        bed.make_pki();
        bed.write_files();
        bed.start_etcd();
        bed.start_apiserver();
        if opts.controller_manager {
            bed.start_controller_manager();
        }
        bed.install_crds();
        bed
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `https://127.0.0.1:PORT`
    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The admin kubeconfig (client certificate in `system:masters`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir().join("admin.kubeconfig")
    }

    /// The CA certificate the API server's serving certificate is signed by.
    pub fn ca_file(&self) -> PathBuf {
        self.dir().join("pki/ca.crt")
    }

    /// The API server's audit log (JSON lines, one event per request stage).
    pub fn audit_log(&self) -> PathBuf {
        self.dir().join("audit.log")
    }

    /// The requests of `user` the API server denied (403), as `VERB URI`, from the audit log.
    pub fn denied(&self, user: &str) -> Vec<String> {
        let audit = std::fs::read_to_string(self.audit_log()).unwrap_or_default();
        audit
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["user"]["username"] == user && e["responseStatus"]["code"] == 403)
            .map(|e| format!("{} {}", e["verb"], e["requestURI"]))
            .collect()
    }

    /// Writes a kubeconfig that authenticates with `token` (e.g. from TokenRequest) and returns its path.
    pub fn kubeconfig_with_token(&self, name: &str, token: &str) -> PathBuf {
        let path = self.dir().join(format!("{name}.kubeconfig"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: testbed\n  cluster:\n    server: {server}\n    \
             certificate-authority: {ca}\nusers:\n- name: {name}\n  user:\n    token: {token}\ncontexts:\n\
             - name: testbed\n  context:\n    cluster: testbed\n    user: {name}\ncurrent-context: testbed\n",
            server = self.server(),
            ca = self.ca_file().display(),
        );
        std::fs::write(&path, text).expect("write a token kubeconfig");
        path
    }

    /// `kubectl --kubeconfig ADMIN ARGS` (the test bed's own kubectl), its output whatever the exit code.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args)
            .output()
            .unwrap_or_else(|e| panic!("run kubectl {args:?}: {e}"))
    }

    /// A `kubectl` command with the admin kubeconfig.
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary("kubectl"));
        cmd.arg("--kubeconfig").arg(self.kubeconfig()).args(args);
        cmd.env_remove("KUBECONFIG");
        cmd
    }

    /// `kubectl ARGS`, panicking with its output and the API server's log when it fails; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        if !out.status.success() {
            self.fail(&format!(
                "kubectl {args:?} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -f -` of `yaml` (server-side when `server_side`); the output whatever the result.
    pub fn apply(&self, yaml: &str, extra: &[&str]) -> Output {
        use std::io::Write;
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        let mut child = self
            .kubectl_cmd(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl apply");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(yaml.as_bytes())
            .expect("write manifests to kubectl");
        child.wait_with_output().expect("kubectl apply output")
    }

    /// `kubectl get KIND NAME -n NS -o jsonpath=PATH`, or `None` when it fails (e.g. not found yet).
    pub fn jsonpath(&self, kind: &str, name: &str, ns: &str, path: &str) -> Option<String> {
        let out = self.kubectl(&[
            "get",
            kind,
            name,
            "-n",
            ns,
            "-o",
            &format!("jsonpath={path}"),
        ]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn fail(&self, msg: &str) -> ! {
        let logs: Vec<String> = self
            .procs
            .iter()
            .map(|p| {
                format!(
                    "--- {} log ({}):\n{}",
                    p.name,
                    p.log.display(),
                    tail(&p.log, 30)
                )
            })
            .collect();
        panic!("Kubernetes test bed: {msg}\n{}", logs.join("\n"))
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir().join("pki"))
            .output()
            .unwrap_or_else(|e| {
                panic!("run openssl (Debian package `openssl`, installed by scripts/setup): {e}")
            });
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// CA, serving certificate, admin client certificate, service-account key pair (EC P-256).
    fn make_pki(&self) {
        std::fs::create_dir_all(self.dir().join("pki")).expect("create pki dir");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend_from_slice(&ec);
        ca.extend_from_slice(&[
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=openova-testbed-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ]);
        self.openssl(&ca);
        self.leaf(
            "server",
            "/CN=kube-apiserver",
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n",
        );
        self.leaf(
            "admin",
            "/O=system:masters/CN=openova-admin",
            "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n",
        );
        self.openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-out",
            "sa.key",
        ]);
        self.openssl(&["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
    }

    fn leaf(&self, name: &str, subject: &str, ext: &str) {
        let pki = self.dir().join("pki");
        std::fs::write(pki.join(format!("{name}.ext")), ext).expect("write extensions");
        let (key, csr, crt, extf) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            subject,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &extf,
        ]);
    }

    fn write_files(&mut self) {
        self.port = free_port();
        self.write_kubeconfig();
        // Every request, at Metadata level: who asked for what, and the answer's code.
        let audit = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n";
        std::fs::write(self.dir().join("audit-policy.yaml"), audit)
            .expect("write the audit policy");
    }

    fn write_kubeconfig(&self) {
        let pki = self.dir().join("pki");
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: testbed\n  cluster:\n    server: {server}\n    \
             certificate-authority: {ca}\nusers:\n- name: admin\n  user:\n    client-certificate: {crt}\n    \
             client-key: {key}\ncontexts:\n- name: testbed\n  context:\n    cluster: testbed\n    user: admin\n\
             current-context: testbed\n",
            server = self.server(),
            ca = pki.join("ca.crt").display(),
            crt = pki.join("admin.crt").display(),
            key = pki.join("admin.key").display(),
        );
        std::fs::write(self.kubeconfig(), kubeconfig).expect("write the admin kubeconfig");
    }

    fn spawn(&mut self, name: &'static str, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        let log = self.dir().join(format!("{name}.log"));
        let out = File::create(&log).expect("create a process log");
        let err = out.try_clone().expect("clone the log handle");
        let child = cmd
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {name}: {cmd:?}: {e}"));
        self.procs.push(Proc { name, child, log });
    }

    fn check_alive(&mut self) {
        for i in 0..self.procs.len() {
            if let Ok(Some(status)) = self.procs[i].child.try_wait() {
                let name = self.procs[i].name;
                self.fail(&format!("{name} exited early with {status}"));
            }
        }
    }

    fn start_etcd(&mut self) {
        let (client, peer) = (free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let data = self.dir().join("etcd-data");
        self.spawn(
            "etcd",
            Command::new(binary("etcd"))
                .arg("--data-dir")
                .arg(&data)
                .args([
                    "--listen-client-urls",
                    &client_url,
                    "--advertise-client-urls",
                    &client_url,
                ])
                .args([
                    "--listen-peer-urls",
                    &peer_url,
                    "--initial-advertise-peer-urls",
                    &peer_url,
                ])
                .args(["--initial-cluster", &format!("default={peer_url}")])
                // Tests do not need durability; fsync is most of etcd's cost on a busy disk.
                .args(["--unsafe-no-fsync", "--log-level", "warn"]),
        );
        self.etcd_url = client_url;
        let ok = poll(Duration::from_secs(30), Duration::from_millis(100), || {
            self.check_alive();
            std::net::TcpStream::connect(("127.0.0.1", client)).ok()
        });
        if ok.is_none() {
            self.fail("etcd did not open its client port within 30 s");
        }
    }

    /// Starts kube-apiserver and waits for `/readyz`. Its port is picked before it starts, so another
    /// process may take it first: on "address already in use" it is started again on another port.
    fn start_apiserver(&mut self) {
        for attempt in 1..=3 {
            self.spawn_apiserver();
            let mut last = String::new();
            let ready = poll(Duration::from_secs(60), Duration::from_millis(250), || {
                if let Some(Ok(Some(status))) = self.procs.last_mut().map(|p| p.child.try_wait()) {
                    return Some(Err(status));
                }
                let out = self.kubectl(&["get", "--raw", "/readyz"]);
                last = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                out.status.success().then_some(Ok(()))
            });
            match ready {
                Some(Ok(())) => return,
                Some(Err(_)) if attempt < 3 && self.apiserver_port_taken() => {
                    self.procs.pop();
                    self.port = free_port();
                    self.write_kubeconfig();
                }
                Some(Err(status)) => {
                    self.fail(&format!("kube-apiserver exited early with {status}"))
                }
                None => self.fail(&format!("kube-apiserver not ready within 60 s: {last}")),
            }
        }
    }

    fn apiserver_port_taken(&self) -> bool {
        self.procs
            .last()
            .is_some_and(|p| tail(&p.log, 40).contains("address already in use"))
    }

    fn spawn_apiserver(&mut self) {
        let pki = self.dir().join("pki");
        let p = |f: &str| pki.join(f).display().to_string();
        let etcd = self.etcd_url.clone();
        let port = self.port.to_string();
        let cert_dir = self.dir().join("apiserver-certs");
        self.spawn(
            "kube-apiserver",
            Command::new(binary("kube-apiserver"))
                .args(["--etcd-servers", &etcd])
                .args([
                    "--bind-address",
                    "127.0.0.1",
                    "--advertise-address",
                    "127.0.0.1",
                ])
                .args(["--secure-port", &port])
                .arg(format!("--cert-dir={}", cert_dir.display()))
                .args([
                    "--tls-cert-file",
                    &p("server.crt"),
                    "--tls-private-key-file",
                    &p("server.key"),
                ])
                .args(["--client-ca-file", &p("ca.crt")])
                .args(["--service-account-key-file", &p("sa.pub")])
                .args(["--service-account-signing-key-file", &p("sa.key")])
                .args([
                    "--service-account-issuer",
                    "https://kubernetes.default.svc.cluster.local",
                ])
                .args(["--authorization-mode", "RBAC"])
                .arg(format!(
                    "--audit-policy-file={}",
                    self.dir().join("audit-policy.yaml").display()
                ))
                .arg(format!("--audit-log-path={}", self.audit_log().display()))
                // A loopback advertise address is refused at start unless nothing reconciles endpoints.
                .args(["--endpoint-reconciler-type", "none"])
                .args(["--service-cluster-ip-range", "10.0.0.0/24"])
                .args(["--allow-privileged=true", "--v=1"]),
        );
    }

    fn start_controller_manager(&mut self) {
        let pki = self.dir().join("pki");
        let kubeconfig = self.kubeconfig();
        self.spawn(
            "kube-controller-manager",
            Command::new(binary("kube-controller-manager"))
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(["--leader-elect=false", "--secure-port=0"])
                .arg("--service-account-private-key-file")
                .arg(pki.join("sa.key"))
                .arg("--root-ca-file")
                .arg(pki.join("ca.crt"))
                .arg("--use-service-account-credentials=false"),
        );
        // Ready when it has made the default ServiceAccount of `default` (its serviceaccount controller runs).
        let ok = poll(Duration::from_secs(60), Duration::from_millis(250), || {
            self.check_alive();
            self.kubectl(&["get", "serviceaccount", "default", "-n", "default"])
                .status
                .success()
                .then_some(())
        });
        if ok.is_none() {
            self.fail("kube-controller-manager made no default ServiceAccount within 60 s");
        }
    }

    /// Velero's CRDs from the Velero binary, CNPG's and the Barman Cloud plugin's from the fixtures.
    fn install_crds(&mut self) {
        let out = Command::new(binary("velero"))
            .args(["install", "--crds-only", "--dry-run", "-o", "yaml"])
            .env("HOME", self.dir())
            .output()
            .expect("run velero install --crds-only");
        assert!(
            out.status.success(),
            "velero install --crds-only: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let velero = String::from_utf8(out.stdout).expect("velero CRDs are UTF-8");
        self.apply_ok(&velero, &["--server-side"]);
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/crds");
        for f in [
            "cnpg/postgresql.cnpg.io_backups.yaml",
            "cnpg/postgresql.cnpg.io_clusters.yaml",
            "cnpg/postgresql.cnpg.io_scheduledbackups.yaml",
            "barman-cloud/barmancloud.cnpg.io_objectstores.yaml",
        ] {
            let text = std::fs::read_to_string(fixtures.join(f)).expect("read a CRD fixture");
            // Server-side: the Cluster CRD is too large for client-side apply's annotation.
            self.apply_ok(&text, &["--server-side"]);
        }
        self.kubectl_ok(&[
            "wait",
            "--for",
            "condition=Established",
            "crd",
            "--all",
            "--timeout",
            "60s",
        ]);
    }

    /// Applies `yaml`, panicking with kubectl's output when it fails.
    pub fn apply_ok(&self, yaml: &str, extra: &[&str]) -> String {
        let out = self.apply(yaml, extra);
        if !out.status.success() {
            self.fail(&format!(
                "kubectl apply {extra:?} failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// `velero server` as a plain process against the bed, with velero-plugin-for-aws and one
/// BackupStorageLocation on a harness S3 server. Killed on drop.
pub struct Velero {
    proc: Option<Proc>,
}

impl Drop for Velero {
    fn drop(&mut self) {
        self.proc.take();
    }
}

/// The Secret (in `velero`) the BSL's credential refers to; the name `openova render` uses.
pub const VELERO_SECRET: &str = "openova-velero-s3";

impl Velero {
    /// Creates namespace `velero`, the credentials Secret for `s3` (an AWS credentials file), the
    /// Deployment `velero/velero` with 0 replicas (Velero's restore reads its image from it), and starts
    /// `velero server`. The BackupStorageLocation is the caller's (e.g. what `openova render` wrote).
    pub fn start(bed: &KubeTestBed, s3: &S3Server) -> Velero {
        bed.kubectl_ok(&["create", "namespace", "velero"]);
        let creds = format!(
            "[default]\naws_access_key_id={}\naws_secret_access_key={}\n",
            s3.access_key(),
            s3.secret_key()
        );
        let creds_file = bed.dir().join("velero-credentials");
        std::fs::write(&creds_file, creds).expect("write velero credentials");
        bed.kubectl_ok(&[
            "create",
            "secret",
            "generic",
            VELERO_SECRET,
            "-n",
            "velero",
            &format!("--from-file=cloud={}", creds_file.display()),
        ]);
        std::fs::remove_file(&creds_file).ok();
        bed.apply_ok(VELERO_DEPLOYMENT, &[]);
        let tmp = bed.dir().join("velero-tmp");
        std::fs::create_dir_all(&tmp).expect("velero TMPDIR");
        let log = bed.dir().join("velero.log");
        let out = File::create(&log).expect("velero log");
        let err = out.try_clone().expect("clone");
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(binary("velero"));
        cmd.arg("server")
            .arg("--kubeconfig")
            .arg(bed.kubeconfig())
            .args(["--namespace", "velero"])
            .arg("--plugin-dir")
            .arg(bin_dir().join("velero-plugins"))
            .args(["--metrics-address", &format!("127.0.0.1:{}", free_port())])
            .args(["--profiler-address", &format!("127.0.0.1:{}", free_port())])
            .args(["--log-format", "text"])
            .env("TMPDIR", &tmp)
            .env("HOME", bed.dir())
            .env_remove("KUBECONFIG");
        for k in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
        ] {
            cmd.env_remove(k);
        }
        let child = cmd
            .current_dir(bed.dir())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("start velero server");
        Velero {
            proc: Some(Proc {
                name: "velero",
                child,
                log,
            }),
        }
    }

    pub fn log(&self) -> String {
        self.proc
            .as_ref()
            .map_or_else(String::new, |p| tail(&p.log, 60))
    }

    /// Waits until BackupStorageLocation `name` is Available; panics with Velero's log otherwise.
    pub fn wait_location_available(&mut self, bed: &KubeTestBed, name: &str) {
        let mut phase = String::new();
        let ok = poll(Duration::from_secs(90), Duration::from_millis(500), || {
            if let Some(p) = self.proc.as_mut()
                && let Ok(Some(status)) = p.child.try_wait()
            {
                panic!("velero server exited with {status}:\n{}", tail(&p.log, 60));
            }
            phase = bed
                .jsonpath("backupstoragelocation", name, "velero", "{.status.phase}")
                .unwrap_or_default();
            (phase == "Available").then_some(())
        });
        if ok.is_none() {
            panic!(
                "BackupStorageLocation {name} not Available within 90 s (phase {phase:?}); velero log:\n{}",
                self.log()
            );
        }
    }
}

/// Velero's restore reads the image of Deployment velero/velero (for its pod-volume restore helper);
/// without it a restore ends PartiallyFailed. No pod ever runs: no kubelet.
const VELERO_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: velero
  namespace: velero
spec:
  replicas: 0
  selector:
    matchLabels: {component: velero}
  template:
    metadata:
      labels: {component: velero}
    spec:
      containers:
      - name: velero
        image: velero/velero:v1.18.3
";
