//! The plugin watcher against real registration sockets in a temporary directory: a CSI
//! plugin registers (and is told so), a plugin of another type is refused (and told why), and
//! a plugin whose socket goes away, or stops answering, is deregistered.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ferrolet_csi::{PluginWatcher, RegistrationHandler};
use ferrolet_proto::pluginregistration::v1 as reg;
use ferrolet_proto::pluginregistration::v1::registration_server::{
    Registration, RegistrationServer,
};
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
}

#[async_trait]
impl RegistrationHandler for Recorder {
    async fn register(
        &self,
        name: &str,
        endpoint: &Path,
        versions: &[String],
    ) -> Result<(), String> {
        self.events.lock().unwrap().push(format!(
            "register {name} {} {versions:?}",
            endpoint.display()
        ));
        Ok(())
    }

    async fn deregister(&self, name: &str) {
        self.events
            .lock()
            .unwrap()
            .push(format!("deregister {name}"));
    }
}

struct Plugin {
    info: reg::PluginInfo,
    statuses: Arc<Mutex<Vec<reg::RegistrationStatus>>>,
}

#[tonic::async_trait]
impl Registration for Plugin {
    async fn get_info(
        &self,
        _: Request<reg::InfoRequest>,
    ) -> Result<Response<reg::PluginInfo>, Status> {
        Ok(Response::new(self.info.clone()))
    }

    async fn notify_registration_status(
        &self,
        request: Request<reg::RegistrationStatus>,
    ) -> Result<Response<reg::RegistrationStatusResponse>, Status> {
        self.statuses.lock().unwrap().push(request.into_inner());
        Ok(Response::new(reg::RegistrationStatusResponse {}))
    }
}

/// Serves a registration socket at `path` until `stop`; returns what the plugin was told.
fn serve(
    path: &Path,
    kind: &str,
    name: &str,
    stop: CancellationToken,
) -> Arc<Mutex<Vec<reg::RegistrationStatus>>> {
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let plugin = Plugin {
        info: reg::PluginInfo {
            r#type: kind.to_owned(),
            name: name.to_owned(),
            endpoint: format!("/plugins/{name}/csi.sock"),
            supported_versions: vec!["1.0.0".to_owned()],
        },
        statuses: statuses.clone(),
    };
    let listener = ferrolet_csi::socket::bind(path).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RegistrationServer::new(plugin))
            .serve_with_incoming_shutdown(
                UnixListenerStream::new(listener),
                stop.cancelled_owned(),
            ),
    );
    statuses
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn plugins_register_are_refused_and_go_away() {
    let dir = tempfile::tempdir().unwrap();
    let registry: PathBuf = dir.path().join("plugins_registry");
    std::fs::create_dir_all(&registry).unwrap();
    let recorder = Arc::new(Recorder::default());
    let cancel = CancellationToken::new();
    let watcher = tokio::spawn(
        PluginWatcher::new(&registry)
            .with_poll_interval(Duration::from_millis(50))
            .run(recorder.clone(), cancel.clone()),
    );

    let csi_stop = CancellationToken::new();
    let csi_socket = registry.join("hostpath-reg.sock");
    let csi_told = serve(&csi_socket, "CSIPlugin", "hostpath", csi_stop.clone());
    let other_stop = CancellationToken::new();
    let other_told = serve(
        &registry.join("gpu-reg.sock"),
        "DevicePlugin",
        "gpu",
        other_stop.clone(),
    );

    until("the CSI plugin told it is registered", || {
        csi_told.lock().unwrap().iter().any(|s| s.plugin_registered)
    })
    .await;
    until("the device plugin told it is refused", || {
        other_told
            .lock()
            .unwrap()
            .iter()
            .any(|s| !s.plugin_registered)
    })
    .await;
    // Told once why, and not asked again while its socket stays the same.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let told = other_told.lock().unwrap().clone();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].error.contains("DevicePlugin"), "{told:?}");
    assert_eq!(
        recorder.events.lock().unwrap().clone(),
        ["register hostpath /plugins/hostpath/csi.sock [\"1.0.0\"]"]
    );

    // The plugin dies without removing its socket: it stops answering, and is deregistered.
    csi_stop.cancel();
    until("the dead plugin deregistered", || {
        recorder
            .events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e == "deregister hostpath")
    })
    .await;
    // It comes back on a new socket at the same path: registered again.
    let again = serve(
        &csi_socket,
        "CSIPlugin",
        "hostpath",
        CancellationToken::new(),
    );
    until("the plugin registered again", || {
        again.lock().unwrap().iter().any(|s| s.plugin_registered)
    })
    .await;
    // Its socket is removed: deregistered.
    std::fs::remove_file(&csi_socket).unwrap();
    until("the removed plugin deregistered", || {
        recorder
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| *e == "deregister hostpath")
            .count()
            == 2
    })
    .await;
    cancel.cancel();
    watcher.await.unwrap();
    other_stop.cancel();
    let events = recorder.events.lock().unwrap().clone();
    assert_eq!(
        events.iter().filter(|e| e.starts_with("register")).count(),
        2,
        "{events:?}"
    );
}
