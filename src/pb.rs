//! Generated protobuf and gRPC code: etcd's public API (wire-compatible with etcd 3.4/3.5) and
//! detcd's own peer protocol. Sibling modules because the protos refer to each other.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// etcd's mvcc types (`KeyValue`, `Event`).
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// etcd's auth types.
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// etcd's v3 API services and messages.
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");

    /// An alarm type by its protobuf name (`NOSPACE`), or its number if unknown.
    pub fn alarm_type_name(alarm: i32) -> String {
        AlarmType::try_from(alarm)
            .map_or_else(|_| alarm.to_string(), |t| t.as_str_name().to_string())
    }

    impl AlarmMember {
        /// The member in Go's `%v` text form, as etcd writes it in `Status.errors` and etcdctl
        /// prints it: `memberID:<id> alarm:NOSPACE ` (with the trailing space).
        pub fn text(&self) -> String {
            format!(
                "memberID:{} alarm:{} ",
                self.member_id,
                alarm_type_name(self.alarm)
            )
        }
    }
}

/// etcd's lock service.
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

/// etcd's election service.
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

/// detcd's peer transport and raft entry envelope.
pub mod detcdpb {
    tonic::include_proto!("detcdpb");
}
