//! Maintenance commands: `etcdctl alarm list|disarm` and `defrag`. `disarm` is clientv3's
//! `AlarmDisarm` with an empty member: list the raised alarms, then deactivate each one,
//! printing those the server lowered. `defrag` asks each endpoint in turn, reporting each
//! result on its own line and exiting 1 if any failed.

use super::error::{CtlError, CtlResult};
use super::Ctx;
use crate::pb::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::pb::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmResponse, DefragmentRequest,
};

fn no_arguments(command: &str, args: &[String]) -> CtlResult {
    if args.is_empty() {
        Ok(())
    } else {
        Err(CtlError::BadArgs(format!(
            "alarm {command} command accepts no arguments"
        )))
    }
}

async fn alarm_call(ctx: &mut Ctx, request: AlarmRequest) -> CtlResult<AlarmResponse> {
    ctx.conn
        .call(rpc!(MaintenanceClient, alarm, request))
        .await
        .map_err(CtlError::Failed)
}

/// `alarm list`.
pub async fn alarm_list(ctx: &mut Ctx, args: &[String]) -> CtlResult {
    no_arguments("list", args)?;
    let display = ctx.display()?;
    let resp = alarm_call(ctx, AlarmRequest::default()).await?;
    display.alarms(&resp)
}

/// `alarm disarm`.
pub async fn alarm_disarm(ctx: &mut Ctx, args: &[String]) -> CtlResult {
    no_arguments("disarm", args)?;
    let display = ctx.display()?;
    let raised = alarm_call(ctx, AlarmRequest::default()).await?;
    let mut lowered = AlarmResponse::default();
    for alarm in raised.alarms {
        let request = AlarmRequest {
            action: AlarmAction::Deactivate as i32,
            member_id: alarm.member_id,
            alarm: alarm.alarm,
        };
        lowered
            .alarms
            .extend(alarm_call(ctx, request).await?.alarms);
    }
    display.alarms(&lowered)
}

/// `defrag`.
pub async fn defrag(ctx: &mut Ctx) -> CtlResult {
    ctx.display()?;
    let mut failed = false;
    for ep in ctx.conn.endpoints().to_vec() {
        let mut conn = ctx.conn.single(&ep);
        match conn
            .call(rpc!(MaintenanceClient, defragment, DefragmentRequest {}))
            .await
        {
            Ok(_) => super::display::stdout(&format!("Finished defragmenting etcd member[{ep}]\n")),
            Err(e) => {
                eprintln!("Failed to defragment etcd member[{ep}] ({e})");
                failed = true;
            }
        }
    }
    if failed {
        return Err(CtlError::Quiet(1));
    }
    Ok(())
}
