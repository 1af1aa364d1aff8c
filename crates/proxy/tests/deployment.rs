//! Tests of what deploys the proxy beyond the binary: the Kubernetes manifests
//! (`packaging/kubernetes/`: every field checked against the API version its
//! object declares, the keys that matter for the proxy, the ConfigMaps' TOML run
//! by the real binary), a config file updated the way Kubernetes updates a
//! mounted ConfigMap (a symlink swap), and the Grafana dashboard
//! (`packaging/grafana/`: every metric it queries is one a running proxy exports).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::*;

const KUBERNETES: &str = "packaging/kubernetes";
/// The field names and types of the API objects the manifests use
/// (scripts/kubernetes-schema.py).
const SCHEMA: &str = "crates/proxy/tests/data/kubernetes-schema.json";
/// The proxy's default drain timeout (`--drain-timeout`), in seconds: a
/// pod's grace period must be longer.
fn drain_timeout_s() -> i64 {
    i64::try_from(rtsp_proxy::config::DEFAULT_DRAIN_TIMEOUT.as_secs()).expect("seconds")
}
const PROBE: Duration = Duration::from_secs(30);

/// Debian's interpreter, the one `python3-yaml` is installed for.
const PYTHON: &str = "/usr/bin/python3";

/// Every document of a YAML file, as JSON (PyYAML's safe loader: python3-yaml).
fn yaml_documents(file: &Path) -> Vec<Value> {
    let out = Command::new(PYTHON)
        .args([
            "-c",
            "import json, sys, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)",
        ])
        .arg(file)
        .output()
        .expect("python3 (with python3-yaml)");
    assert!(
        out.status.success(),
        "{} does not parse: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON from python3");
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// Every object of `packaging/kubernetes/*.yaml`, with its file's name.
fn manifests() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_file(KUBERNETES))
        .expect("packaging/kubernetes")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            yaml_documents(f)
                .into_iter()
                .map(move |d| (name.clone(), d))
        })
        .collect()
}

/// Checks `value` against the schema type `ty` (`str`, `int`, `bool`,
/// `object`: anything, `List[T]`, `Dict[str, T]` or a model's name), pushing
/// one line per field the API version does not have or value of the wrong kind.
fn check_type(types: &Value, ty: &str, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(inner) = ty.strip_prefix("List[").and_then(|t| t.strip_suffix(']')) {
        match value.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_type(types, inner, item, &format!("{at}[{i}]"), errors);
                }
            }
            None => errors.push(format!("{at}: a list expected, got {value}")),
        }
        return;
    }
    if let Some(inner) = ty
        .strip_prefix("Dict[str, ")
        .and_then(|t| t.strip_suffix(']'))
    {
        match value.as_object() {
            Some(map) => {
                for (k, v) in map {
                    check_type(types, inner, v, &format!("{at}.{k}"), errors);
                }
            }
            None => errors.push(format!("{at}: a map expected, got {value}")),
        }
        return;
    }
    let fine = match ty {
        "object" => true,
        "str" | "datetime" | "bytes" => value.is_string(),
        "int" => value.is_i64() || value.is_u64(),
        "float" => value.is_number(),
        "bool" => value.is_boolean(),
        model => {
            let Some(fields) = types.get(model).and_then(Value::as_object) else {
                errors.push(format!("{at}: type {model} is not in {SCHEMA}"));
                return;
            };
            let Some(map) = value.as_object() else {
                errors.push(format!("{at}: an object ({model}) expected, got {value}"));
                return;
            };
            for (k, v) in map {
                match fields.get(k).and_then(Value::as_str) {
                    Some(field_ty) => check_type(types, field_ty, v, &format!("{at}.{k}"), errors),
                    None => errors.push(format!("{at}.{k}: no such field in {model}")),
                }
            }
            true
        }
    };
    if !fine {
        errors.push(format!("{at}: a {ty} expected, got {value}"));
    }
}

#[test]
fn kubernetes_manifests_name_only_fields_of_their_api_version() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_file(SCHEMA)).expect(SCHEMA))
            .expect("schema JSON");
    let roots = schema["roots"].as_object().expect("roots");
    let types = &schema["types"];
    let objects = manifests();
    assert!(objects.len() >= 8, "{} objects", objects.len());
    let mut errors = Vec::new();
    for (file, doc) in &objects {
        let api = doc["apiVersion"].as_str().unwrap_or("?");
        let kind = doc["kind"].as_str().unwrap_or("?");
        let name = doc["metadata"]["name"].as_str().unwrap_or("");
        let at = format!("{file}: {api} {kind} {name}");
        match roots.get(&format!("{api} {kind}")).and_then(Value::as_str) {
            Some(model) => check_type(types, model, doc, &at, &mut errors),
            None => errors.push(format!("{at}: not a kind this test knows")),
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // A wrong field is caught (the check is not vacuous).
    let mut bad = Vec::new();
    let deployment = &objects
        .iter()
        .find(|(_, d)| d["kind"] == "Deployment")
        .expect("a Deployment")
        .1;
    let mut wrong = deployment.clone();
    wrong["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] =
        Value::from("/healthz");
    check_type(types, "V1Deployment", &wrong, "wrong", &mut bad);
    assert_eq!(
        bad,
        ["wrong.spec.template.spec.containers[0].livenessProbe.httpGet.paht: no such field in V1HTTPGetAction"]
    );

    // kustomization.yaml lists every other file.
    let kustomization = objects
        .iter()
        .find(|(_, d)| d["kind"] == "Kustomization")
        .expect("kustomization.yaml");
    let listed: BTreeSet<&str> = kustomization.1["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let files: BTreeSet<&str> = objects
        .iter()
        .map(|(f, _)| f.as_str())
        .filter(|f| *f != "kustomization.yaml")
        .collect();
    assert_eq!(listed, files, "kustomization.yaml's resources");
}

/// The object of `kind` named `name`.
fn object<'a>(objects: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    &objects
        .iter()
        .find(|(_, d)| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .1
}

/// The TOML of a ConfigMap's `rtsp-proxy.toml`.
fn configmap_toml(objects: &[(String, Value)], name: &str) -> String {
    object(objects, "ConfigMap", name)["data"]["rtsp-proxy.toml"]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap {name} has no rtsp-proxy.toml"))
        .to_owned()
}

/// A `key = <number>` line's number in a TOML text (first match).
fn toml_number(toml: &str, key: &str) -> i64 {
    toml_number_if_set(toml, key).unwrap_or_else(|| panic!("no {key} in {toml}"))
}

fn toml_number_if_set(toml: &str, key: &str) -> Option<i64> {
    toml.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.split('#').next().unwrap().trim().parse().ok())?
    })
}

#[test]
fn kubernetes_manifests_probe_drain_and_balance_as_the_proxy_needs() {
    let objects = manifests();
    for role in ["origin", "edge"] {
        let name = format!("rtsp-proxy-{role}");
        let deployment = object(&objects, "Deployment", &name);
        let pod = &deployment["spec"]["template"]["spec"];
        let grace = pod["terminationGracePeriodSeconds"]
            .as_i64()
            .expect("grace");
        let toml = configmap_toml(&objects, &name);
        let drain = toml_number_if_set(&toml, "drain_timeout").unwrap_or_else(drain_timeout_s);
        assert!(
            grace > drain + 3,
            "{name}: grace {grace} s, drain timeout {drain} s"
        );
        let container = &pod["containers"][0];
        let ports: BTreeMap<&str, i64> = container["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap(),
                    p["containerPort"].as_i64().unwrap(),
                )
            })
            .collect();
        // The container's ports are the TOML's.
        assert_eq!(ports["rtsp"], toml_number(&toml, "rtsp_port"), "{name}");
        assert!(
            toml.contains(&format!("listen = \"0.0.0.0:{}\"", ports["admin"])),
            "{name}: the admin port listens on the pod's address: {toml}"
        );
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["path"], path, "{name} {probe}");
            assert_eq!(get["port"], "admin", "{name} {probe}");
        }
        // The config is the ConfigMap, mounted as a directory (a subPath mount
        // would never see an update).
        let volume = &pod["volumes"][0];
        assert_eq!(volume["configMap"]["name"], name.as_str());
        let mount = &container["volumeMounts"][0];
        assert_eq!(mount["mountPath"], "/etc/rtsp-proxy");
        assert!(mount.get("subPath").is_none(), "{name}: no subPath");
        assert_eq!(
            container["args"],
            serde_json::json!(["--config", "/etc/rtsp-proxy/rtsp-proxy.toml"])
        );
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        // Every Service port of this role targets a named container port.
        for (_, svc) in objects.iter().filter(|(_, d)| {
            d["kind"] == "Service" && d["spec"]["selector"]["app.kubernetes.io/component"] == role
        }) {
            for p in svc["spec"]["ports"].as_array().unwrap() {
                let target = p["targetPort"].as_str().expect("a named targetPort");
                assert!(ports.contains_key(target), "{name}: {target}");
            }
        }
    }

    let origin = object(&objects, "Deployment", "rtsp-proxy-origin");
    assert_eq!(
        origin["spec"]["replicas"], 1,
        "a camera takes one connection"
    );
    assert_eq!(origin["spec"]["strategy"]["type"], "Recreate");

    let edge = object(&objects, "Deployment", "rtsp-proxy-edge");
    assert_eq!(
        edge["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    let hpa = object(&objects, "HorizontalPodAutoscaler", "rtsp-proxy-edge");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "rtsp-proxy-edge");
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["name"], "cpu");
    assert!(
        edge["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
            .is_string(),
        "the HPA's utilisation needs a CPU request"
    );
    let lb = object(&objects, "Service", "rtsp-proxy-edge");
    assert_eq!(lb["spec"]["type"], "LoadBalancer");
    assert_eq!(lb["spec"]["externalTrafficPolicy"], "Local");
    assert_eq!(lb["spec"]["sessionAffinity"], "ClientIP");
    let lb_ports = lb["spec"]["ports"].as_array().unwrap();
    assert!(
        lb_ports.iter().all(|p| p["name"] != "admin"),
        "the admin port stays inside the cluster"
    );

    // The edges pull the origin's Service under the origin's path names.
    let origin_svc = object(&objects, "Service", "rtsp-proxy-origin");
    let origin_port = origin_svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "rtsp")
        .expect("origin rtsp port")["port"]
        .as_i64()
        .unwrap();
    let edge_toml = configmap_toml(&objects, "rtsp-proxy-edge");
    let origin_toml = configmap_toml(&objects, "rtsp-proxy-origin");
    for line in edge_toml.lines().filter(|l| l.starts_with("[paths.")) {
        let name = &line["[paths.".len()..line.len() - 1];
        assert!(origin_toml.contains(line), "the origin serves {name}");
        assert!(
            edge_toml.contains(&format!(
                "source = \"rtsp://rtsp-proxy-origin:{origin_port}/{name}\""
            )),
            "the edge pulls {name} from the origin's Service"
        );
    }

    // Prometheus scrapes the Services' admin ports, with the proxies' token.
    let monitor = object(&objects, "ServiceMonitor", "rtsp-proxy");
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "admin");
    assert_eq!(endpoint["path"], "/metrics");
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    let scraped: Vec<&str> = objects
        .iter()
        .filter(|(_, d)| d["kind"] == "Service")
        .filter(|(_, d)| {
            selector
                .iter()
                .all(|(k, v)| &d["metadata"]["labels"][k] == v)
        })
        .filter(|(_, d)| {
            d["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "admin")
        })
        .map(|(_, d)| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(scraped, ["rtsp-proxy-edge-admin", "rtsp-proxy-origin"]);
    let secret = &endpoint["authorization"]["credentials"];
    let token_env = &origin["spec"]["template"]["spec"]["containers"][0]["env"][0];
    assert_eq!(token_env["name"], "RTSP_PROXY_ADMIN_TOKEN");
    assert_eq!(
        token_env["valueFrom"]["secretKeyRef"]["name"],
        secret["name"]
    );
    assert_eq!(token_env["valueFrom"]["secretKeyRef"]["key"], secret["key"]);
}

#[test]
fn kubernetes_configmaps_are_configs_the_proxy_runs() {
    let objects = manifests();
    let dir = scratch_dir("kubernetes-configmaps");
    for name in ["rtsp-proxy-origin", "rtsp-proxy-edge"] {
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, configmap_toml(&objects, name)).expect("write TOML");
        // On free ports instead of the pod's, with every variable the
        // Deployment sets from its Secrets.
        let admin = format!("127.0.0.1:{}", free_port());
        let mut cmd = Proxy::command(
            free_port(),
            &["--config", file.to_str().unwrap(), "--admin", &admin],
        );
        let container =
            &object(&objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0];
        for var in container["env"].as_array().expect("env") {
            cmd.env(var["name"].as_str().unwrap(), "s3cret-for-the-test");
        }
        let proc = Proc::spawn(name, &mut cmd).expect("spawn");
        let line = proc
            .wait_for_line(
                "RTSP stream \"cam1\" (config file)",
                Duration::from_secs(30),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!("{name}: {line}");
        assert!(proc.try_wait().is_none(), "{name} runs");
    }
}

/// A config directory laid out as the kubelet mounts a ConfigMap:
/// `rtsp-proxy.toml -> ..data/rtsp-proxy.toml`, `..data -> ..<timestamp>`.
struct ConfigMapMount {
    dir: PathBuf,
    generation: u32,
}

impl ConfigMapMount {
    fn new(dir: PathBuf, toml: &str) -> ConfigMapMount {
        let mut mount = ConfigMapMount { dir, generation: 0 };
        mount.update(toml);
        std::os::unix::fs::symlink("..data/rtsp-proxy.toml", mount.file()).expect("file link");
        mount
    }

    fn file(&self) -> PathBuf {
        self.dir.join("rtsp-proxy.toml")
    }

    /// As the kubelet's atomic writer: a new timestamped directory, a new
    /// `..data_tmp` link renamed over `..data`, then the old directory removed.
    fn update(&mut self, toml: &str) {
        self.generation += 1;
        let old = std::fs::read_link(self.dir.join("..data")).ok();
        let stamp = format!(
            "..2026_12_07_05_00_{:02}.{:09}",
            self.generation,
            1000 + self.generation
        );
        std::fs::create_dir(self.dir.join(&stamp)).expect("timestamped dir");
        std::fs::write(self.dir.join(&stamp).join("rtsp-proxy.toml"), toml).expect("write");
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&stamp, &tmp).expect("..data_tmp");
        std::fs::rename(&tmp, self.dir.join("..data")).expect("swap ..data");
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).expect("old dir removed");
        }
    }
}

#[test]
fn a_configmap_update_by_symlink_swap_is_reloaded() {
    let back_a = Backend::start(BackendOpts::codecs("h264"));
    let back_b = Backend::start(BackendOpts::codecs("h264"));
    let path = |n: &str, url: &str| format!("[paths.{n}]\nsource = \"{url}\"\n");
    let mut mount = ConfigMapMount::new(scratch_dir("configmap-mount"), &path("a", back_a.url()));
    let file = mount.file();
    let proxy = Proxy::start(&["-v", "--config", file.to_str().unwrap()]);
    assert!(!ffprobe_streams(&proxy.url("a"), "tcp", PROBE)
        .expect("a plays")
        .is_empty());

    // The ConfigMap gains b.
    mount.update(&format!(
        "{}{}",
        path("a", back_a.url()),
        path("b", back_b.url())
    ));
    let line = proxy
        .proc
        .wait_for_line("config reloaded", Duration::from_secs(10))
        .expect("the swap is noticed");
    assert!(
        line.contains("added: b; changed: none; removed: none; unchanged: 1"),
        "{line}"
    );
    let b = ffprobe_streams(&proxy.url("b"), "tcp", PROBE).expect("b plays");
    assert_eq!(b[0].codec_name, "h264");

    // And loses a: the watcher follows the new ..data, not the removed directory.
    mount.update(&path("b", back_b.url()));
    proxy
        .proc
        .wait_for_count("config reloaded", 2, Duration::from_secs(10))
        .expect("the second swap is noticed");
    let out = rtsp_exchange(
        proxy.addr(),
        format!("DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n", proxy.url("a")).as_bytes(),
        PROBE,
    )
    .expect("DESCRIBE a");
    assert!(out.starts_with("RTSP/1.0 404"), "a is gone: {out}");
}

/// `GET path` (HTTP/1.0, so the body is not chunked): the body of a 200.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    body.to_owned()
}

/// Every `rtsp_proxy_*` / `process_*` name in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if (word.starts_with("rtsp_proxy_") || word.starts_with("process_"))
            && !names.iter().any(|n| n == word)
        {
            names.push(word.to_owned());
        }
    }
    names
}

/// Every `expr` of every panel's targets (rows' nested panels too).
fn dashboard_queries(panels: &[Value], out: &mut Vec<(String, String)>) {
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("").to_owned();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a target with expr");
            out.push((title.clone(), expr.to_owned()));
        }
        if let Some(nested) = panel["panels"].as_array() {
            dashboard_queries(nested, out);
        }
    }
}

#[test]
fn grafana_dashboard_queries_only_metrics_the_proxy_exports() {
    let text = std::fs::read_to_string(repo_file("packaging/grafana/rtsp-proxy.json"))
        .expect("packaging/grafana/rtsp-proxy.json");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(dashboard["title"].is_string() && dashboard["uid"].is_string());
    let mut queries = Vec::new();
    dashboard_queries(
        dashboard["panels"].as_array().expect("panels"),
        &mut queries,
    );
    let used: BTreeSet<String> = queries.iter().flat_map(|(_, e)| metric_names(e)).collect();
    for wanted in [
        "rtsp_proxy_path_up",
        "rtsp_proxy_path_clients",
        "rtsp_proxy_path_bytes_received_total",
        "rtsp_proxy_path_bytes_sent_total",
        "rtsp_proxy_path_reconnects_total",
        "rtsp_proxy_client_packets_dropped_total",
    ] {
        assert!(used.contains(wanted), "the dashboard shows {wanted}");
    }
    // Each panel's queries name at least one metric.
    for (title, expr) in &queries {
        assert!(!metric_names(expr).is_empty(), "{title}: {expr}");
    }

    // A running proxy (the demo stream, one client) exports every one of them.
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let proxy = Proxy::start(&["--demo", "--admin", &admin.to_string()]);
    let streams = ffprobe_streams(&proxy.url("demo"), "tcp", PROBE).expect("the demo plays");
    assert!(!streams.is_empty());
    let metrics = http_get(admin, "/metrics");
    let exported: BTreeSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let missing: Vec<&String> = used
        .iter()
        .filter(|m| !exported.contains(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not exported: {missing:?}\nexported: {exported:?}"
    );
    // The label names the dashboard groups by are the metrics' labels.
    for (title, expr) in &queries {
        for label in ["path", "transport"] {
            if expr.contains(&format!("by ({label})")) {
                assert!(metrics.contains(&format!("{label}=\"")), "{title}: {label}");
            }
        }
    }
}
