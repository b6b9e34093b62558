use super::*;

fn parse(args: &[&str]) -> Result<ServerConfig, ConfigError> {
    let mut all = vec!["detcd"];
    all.extend_from_slice(args);
    Flags::try_parse_from(all)
        .expect("flags parse")
        .into_config()
}

#[test]
fn defaults_match_etcd() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.name, "default");
    assert_eq!(c.data_dir, PathBuf::from("default.etcd"));
    assert_eq!(
        c.listen_client,
        vec![ListenAddr::plain(
            url_to_addr("http://127.0.0.1:2379").unwrap()
        )]
    );
    assert_eq!(
        c.initial_cluster["default"],
        vec!["http://localhost:2380".to_string()]
    );
}

#[test]
fn three_member_cluster_and_errors() {
    let ic = "a=http://127.0.0.1:2380,b=http://127.0.0.1:22380,c=http://127.0.0.1:32380";
    let c = parse(&[
        "--name",
        "b",
        "--initial-cluster",
        ic,
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:22380",
    ])
    .unwrap();
    assert_eq!(c.initial_cluster.len(), 3);
    assert_eq!(
        parse(&["--name", "x", "--initial-cluster", ic]).unwrap_err(),
        ConfigError::NameNotInCluster("x".into())
    );
    assert!(matches!(
        parse(&["--initial-cluster-state", "old"]),
        Err(ConfigError::BadClusterState(_))
    ));
    assert!(matches!(
        url_to_addr("localhost:2379"),
        Err(ConfigError::BadUrl(_))
    ));
}

#[test]
fn https_client_urls_need_a_certificate_and_key() {
    let https = ["--listen-client-urls", "https://127.0.0.1:2379"];
    assert_eq!(
        parse(&https).unwrap_err().to_string(),
        "TLS key/cert (--cert-file, --key-file) must be provided for client url \
         https://127.0.0.1:2379 with HTTPS scheme"
    );
    let mut args = https.to_vec();
    args.extend([
        "--cert-file",
        "s.crt",
        "--key-file",
        "s.key",
        "--client-cert-auth",
    ]);
    let c = parse(&args).unwrap();
    assert!(c.listen_client[0].tls);
    assert!(c.client_tls.client_cert_auth);
}
