//! Unit tests of the translation from the Compose model to engine specs.

use super::*;
use crate::compose::{Device, DeviceRequest, Resource};

#[test]
fn device_requests_come_in_compose_order_with_gpu_added_to_gpus() {
    let service = Service {
        gpus: vec![DeviceRequest {
            driver: Some("nvidia".into()),
            count: Some(2),
            capabilities: vec!["utility".into()],
            ..DeviceRequest::default()
        }],
        devices: vec![
            Device {
                source: "nvidia.com/gpu=all".into(),
                target: "nvidia.com/gpu=all".into(),
                permissions: Some("rwm".into()),
            },
            Device {
                source: "/dev/fuse".into(),
                target: "/dev/fuse".into(),
                permissions: None,
            },
        ],
        ..Service::default()
    };
    let reservations = Resource {
        devices: vec![DeviceRequest {
            capabilities: vec!["gpu".into()],
            device_ids: vec!["1".into()],
            options: [("mig".to_owned(), "1".to_owned())].into(),
            ..DeviceRequest::default()
        }],
        ..Resource::default()
    };
    let got = device_requests(&service, Some(&reservations));
    assert_eq!(
        got,
        vec![
            engine::DeviceRequest {
                driver: String::new(),
                count: 0,
                device_ids: vec!["1".into()],
                capabilities: vec![vec!["gpu".into()]],
                options: [("mig".to_owned(), "1".to_owned())].into(),
            },
            engine::DeviceRequest {
                driver: "cdi".into(),
                device_ids: vec!["nvidia.com/gpu=all".into()],
                ..Default::default()
            },
            engine::DeviceRequest {
                driver: "nvidia".into(),
                count: 2,
                capabilities: vec![vec!["utility".into(), "gpu".into()]],
                ..Default::default()
            },
        ]
    );
    // The CDI name is asked of the driver, not mapped as a host path.
    assert!(is_cdi_device(&service.devices[0]));
    assert!(!is_cdi_device(&service.devices[1]));
    assert!(device_requests(&Service::default(), None).is_empty());
}

#[test]
fn cdi_names_are_vendor_class_equals_name() {
    for yes in [
        "nvidia.com/gpu=all",
        "vendor.example/class_1=dev-0",
        "a/b=0:1",
    ] {
        assert!(is_cdi_name(yes), "{yes}");
    }
    for no in [
        "/dev/nvidia0",
        "nvidia.com/gpu",
        "nvidia.com=gpu",
        "1vendor/gpu=all",
        "nvidia.com/gpu=",
        "nvidia.com/gpu=-x",
        "nvidia.com-/gpu=all",
        "nv idia/gpu=all",
    ] {
        assert!(!is_cdi_name(no), "{no}");
    }
}

#[test]
fn mac_addresses() {
    for yes in ["02:42:ac:11:00:02", "02-42-AC-11-00-02"] {
        assert!(is_mac(yes), "{yes}");
    }
    for no in [
        "",
        "02:42:ac:11:00",
        "02:42:ac:11:00:0g",
        "0242ac110002",
        "02:42-ac:11:00:02",
    ] {
        assert!(!is_mac(no), "{no}");
    }
}
