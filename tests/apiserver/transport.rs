//! TLS, authentication, HTTP versions, kubeconfig files and outages.

use super::*;

#[tokio::test]
async fn a_client_without_a_certificate_is_unauthorized() {
    let world = World::start().await;
    let mut kubeconfig = world
        .server
        .kubeconfig(&Identity::kubeadm_admin(), &world.server.url())
        .unwrap();
    for user in &mut kubeconfig.auth_infos {
        user.auth_info = Some(kube::config::AuthInfo::default());
    }
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let anonymous: Api<Lease> = Api::namespaced(kube::Client::try_from(config).unwrap(), NS);
    let refused = api_status(anonymous.get(LOCK).await);
    assert_eq!(
        (refused.code, refused.reason.as_str()),
        (401, "Unauthorized")
    );
}

#[tokio::test]
async fn tls_server_name_kubernetes_is_accepted_on_a_loopback_address() {
    let world = World::start().await;
    // kubeadm's admin.conf names the VIP; kvip dials the local address and checks the name
    // `kubernetes`, which the serving certificate carries.
    let server = format!("https://127.0.0.1:{}", world.server.addr().port());
    let client = world
        .client_via(
            &Identity::kubeadm_super_admin(),
            &server,
            Some("kubernetes"),
        )
        .await;
    let leases: Api<Lease> = Api::namespaced(client, NS);
    leases
        .create(&PostParams::default(), &lease(LOCK, "node-a"))
        .await
        .unwrap();

    // A name the certificate does not carry must fail the handshake, or the check is not real.
    let wrong = world
        .client_via(
            &Identity::kubeadm_super_admin(),
            &server,
            Some("not-kubernetes"),
        )
        .await;
    let result = Api::<Lease>::namespaced(wrong, NS).get(LOCK).await;
    assert!(
        !matches!(result, Ok(_) | Err(kube::Error::Api(_))),
        "TLS with a wrong server name must fail below HTTP: {result:?}"
    );
}

#[tokio::test]
async fn kubeconfig_file_looks_like_kubeadms_admin_conf() {
    let world = World::start().await;
    let path = world.dir.path().join("admin.conf");
    world
        .server
        .write_kubeconfig(&Identity::kubeadm_admin(), "https://10.0.0.100:6443", &path)
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("\n    certificate-authority-data: LS0t"),
        "plain scalars like kubeadm's:\n{text}"
    );
    let config = kube::config::Kubeconfig::read_from(&path).unwrap();
    assert_eq!(
        config.current_context.as_deref(),
        Some("kubernetes-admin@kubernetes")
    );
    let cluster = config.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(config.clusters[0].name, "kubernetes");
    assert_eq!(cluster.server.as_deref(), Some("https://10.0.0.100:6443"));
    assert!(cluster.certificate_authority_data.is_some());
    let user = config.auth_infos[0].auth_info.as_ref().unwrap();
    assert_eq!(config.auth_infos[0].name, "kubernetes-admin");
    assert!(user.client_certificate_data.is_some() && user.client_key_data.is_some());
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn http2_is_negotiated_and_served() {
    use http_body_util::BodyExt as _;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    let world = World::start().await;
    let identity = Identity::kubeadm_super_admin();
    let client_cert = world.server.issue(&identity).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(world.server.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(client_cert.cert_pem.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(client_cert.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(world.server.addr())
        .await
        .unwrap();
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect(ServerName::try_from("kubernetes").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let uri =
        format!("https://kubernetes/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{LOCK}");
    let request = hyper::Request::get(uri)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    assert_eq!(response.status(), 404);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let status: k8s_openapi::apimachinery::pkg::apis::meta::v1::Status =
        serde_json::from_slice(&body).unwrap();
    assert_eq!(status.reason.as_deref(), Some("NotFound"));
}

#[tokio::test]
async fn an_outage_cuts_one_identity_off_while_the_other_keeps_working() {
    let world = World::start().await;
    for node in ["node-a", "node-b"] {
        world.server.grant(Subject::user(node));
    }
    let a = world.leases_for(&Identity::new("node-a", &[])).await;
    let b = world.leases_for(&Identity::new("node-b", &[])).await;
    let created = a
        .create(&PostParams::default(), &lease(LOCK, "node-a"))
        .await
        .unwrap();
    let mut a_watch = a
        .watch(
            &WatchParams::default(),
            created.metadata.resource_version.as_deref().unwrap(),
        )
        .await
        .unwrap()
        .boxed();

    world.server.set_outage(Subject::user("node-a"), true);
    let cut = tokio::time::timeout(GUARD, a.get(LOCK)).await.unwrap();
    assert!(
        matches!(cut, Err(ref e) if !matches!(e, kube::Error::Api(_))),
        "node-a must fail below HTTP: {cut:?}"
    );
    assert_eq!(holder(&b.get(LOCK).await.unwrap()), Some("node-a"));
    let ended = tokio::time::timeout(GUARD, a_watch.try_next())
        .await
        .unwrap();
    assert!(matches!(ended, Ok(None) | Err(_)), "{ended:?}");

    world.server.set_outage(Subject::user("node-a"), false);
    assert!(a.get(LOCK).await.is_ok());
}

#[tokio::test]
async fn a_hanging_outage_leaves_requests_unanswered_until_it_ends() {
    let world = World::start().await;
    let node_a = Identity::new("node-a", &[]);
    world.server.grant(Subject::user("node-a"));
    let a = world.leases_for(&node_a).await;
    assert!(api_status(a.get(LOCK).await).is_not_found());

    // The client's own deadline is what must fire, as kvip's request timeout will; it only
    // bounds how long the test waits for the held request.
    let mut config = world.server.kube_config(&node_a).await.unwrap();
    config.read_timeout = Some(Duration::from_secs(1));
    let impatient: Api<Lease> = Api::namespaced(kube::Client::try_from(config).unwrap(), NS);
    world
        .server
        .set_outage_mode(Subject::user("node-a"), Some(apiserver::OutageMode::Hang));
    let held = tokio::time::timeout(GUARD, impatient.get(LOCK))
        .await
        .unwrap();
    assert!(
        matches!(held, Err(ref e) if !matches!(e, kube::Error::Api(_))),
        "a held request gets no HTTP answer: {held:?}"
    );
    world.server.set_outage_mode(Subject::user("node-a"), None);
    assert!(api_status(a.get(LOCK).await).is_not_found());
}

#[tokio::test]
async fn version_answers_and_unknown_paths_are_a_404_status() {
    let world = World::start().await;
    let client = world.client_for(&Identity::kubeadm_super_admin()).await;
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "33")
    );

    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, NS);
    let missing = api_status(pods.get("kube-vip").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
}

#[tokio::test]
async fn a_caller_bound_listener_is_used_and_extra_names_reach_the_certificate() {
    // What `kvip lab` does: bind inside a namespace, then hand the listener over.
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let bound = listener.local_addr().unwrap();
    let world = World::with(Options {
        listener: Some(listener),
        extra_dns_names: vec!["lab-api.kvip.test".to_string()],
        extra_ips: vec!["10.0.0.1".parse().unwrap()],
        ..Options::default()
    })
    .await;
    assert_eq!(world.server.addr(), bound);
    let client = world
        .client_via(
            &Identity::kubeadm_super_admin(),
            &world.server.url(),
            Some("lab-api.kvip.test"),
        )
        .await;
    let leases: Api<Lease> = Api::namespaced(client, NS);
    assert!(api_status(leases.get(LOCK).await).is_not_found());
}
