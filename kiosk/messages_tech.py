"""The technician screens' sentences (zh, en); merged into kiosk.messages.CATALOGUE.

What the drivers find wrong with a part (``drivers.diag`` findings) is said here too, one
``tech.finding.<code>`` per finding code with the finding's ``params`` as placeholders, so a
technician can diagnose in Chinese or English. The en text is the driver's own English (what
``lendbox diag`` prints and the service manuals quote); raw driver text inside a finding (an
exception, a reason) stays as the driver said it. Subjects ("door 7", "bus rs485-1") are
rendered from ``tech.subject.*`` (kiosk.tech_subjects); part and status words a finding
carries as params from ``tech.part.*`` and ``tech.part_status.*``.
"""

from __future__ import annotations

TECH: dict[str, tuple[str, str]] = {
    # login
    "tech.login_title": ("技术员登录", "Technician login"),
    "tech.password": ("技术员密码", "Technician password"),
    "tech.login": ("登录", "Log in"),
    "tech.logout": ("退出登录", "Log out"),
    "tech.wrong_password": ("密码不正确，请重试。多次输错后需等待一段时间。",
                            "Wrong password. Try again; after several wrong tries the login "
                            "waits a while."),
    "tech.locked": ("密码错误次数过多，请在 {seconds} 秒后再试。",
                    "Too many wrong passwords: try again in {seconds} seconds."),
    "tech.no_password": ("尚未设置技术员密码。请在书柜上运行以下命令设置密码，然后重启书柜程序：",
                         "No technician password is set. Set one by running this command on "
                         "the cabinet, then restart the kiosk:"),
    # frame
    "tech.nav": ("技术员功能", "Technician pages"),
    "tech.nav_devices": ("设备", "Devices"),
    "tech.nav_doors": ("柜门测试", "Door test"),
    "tech.nav_inventory": ("天线盘点", "Antennas"),
    "tech.nav_selftest": ("自检", "Self-test"),
    "tech.bundle": ("下载诊断包", "Download diagnostics bundle"),
    "tech.refused_title": ("暂不能执行", "Not now"),
    "tech.busy": ("书柜正在为读者服务（有读者会话或柜门在使用中），为免打扰读者，暂不能测试。请稍后再试。",
                  "The cabinet is serving a reader (a session runs or a door is in use). "
                  "Testing now would disturb them: try again when it is idle."),
    "tech.diag_running": ("另一项诊断正在进行，请等它完成后再试。",
                          "Another diagnosis is running: wait for it to finish, then try "
                          "again."),
    "tech.no_such_door": ("没有这个柜门。", "There is no such door."),
    "tech.yes": ("是", "yes"),
    "tech.no": ("否", "no"),
    "tech.fault": ("故障", "FAULT"),
    "tech.warning": ("警告", "WARNING"),
    "tech.all_passed": ("全部通过：未发现问题。", "All passed: no problem found."),
    "tech.findings": ("检查结果", "Findings"),
    "tech.refresh": ("刷新", "Refresh"),
    "tech.door_n": ("{door}号门", "Door {door}"),
    # devices
    "tech.devices_title": ("设备诊断", "Device diagnostics"),
    "tech.devices": ("设备", "Devices"),
    "tech.devices_caption": ("每个设备的可用性、固件和计数器",
                             "Each device: availability, firmware and counters"),
    "tech.col_device": ("设备", "Device"),
    "tech.col_availability": ("可用性", "Availability"),
    "tech.col_firmware": ("固件", "Firmware"),
    "tech.col_counters": ("计数器", "Counters"),
    "tech.board": ("控制板 {address}（{bus}）", "Board {address} ({bus})"),
    "tech.reader": ("RFID 读写器 {name}（{bus}）", "RFID reader {name} ({bus})"),
    "tech.card_reader": ("读卡器", "Card reader"),
    "tech.camera": ("摄像头", "Camera"),
    "tech.serial": ("序列号", "serial"),
    "tech.kiosk_sees": ("书柜程序所见：", "as the kiosk sees it:"),
    "tech.avail_ok": ("正常", "OK"),
    "tech.avail_degraded": ("降级", "degraded"),
    "tech.avail_unavailable": ("不可用", "unavailable"),
    "tech.avail_unknown": ("未知", "unknown"),
    "tech.counters": ("运行 {uptime} 秒，正常帧 {ok}，校验错误 {crc}，重发 {retx}，上电 {power} 次，"
                      "开锁次数 {unlocks}",
                      "uptime {uptime} s, frames ok {ok}, CRC errors {crc}, retransmissions "
                      "{retx}, power cycles {power}, unlocks {unlocks}"),
    "tech.link": ("主机链路：请求 {requests}，重试 {retries}，超时 {timeouts}",
                  "host link: {requests} requests, {retries} retries, {timeouts} timeouts"),
    "tech.outbox": ("数据同步", "Sync and outbox"),
    "tech.online": ("在线", "Online"),
    "tech.pending": ("待上传事件", "Events waiting to upload"),
    "tech.last_seq": ("最新事件序号", "Last event number"),
    "tech.acked": ("服务器已确认至", "Acknowledged by the server up to"),
    "tech.exposure": ("离线借出 / 上限", "Offline loans / cap"),
    "tech.sync_error": ("同步错误", "Sync error"),
    "tech.events": ("最近事件", "Recent events"),
    "tech.no_events": ("本次启动后尚无事件。", "No events since the kiosk started."),
    "tech.alarms": ("报警", "Alarms"),
    "tech.no_alarms": ("没有报警记录。", "No alarms recorded."),
    "tech.alarm_door_opened_without_session": ("柜门在无会话时被打开（强行打开或技术员测试）",
                                               "opened without a session (forced, or a "
                                               "technician's test)"),
    "tech.alarm_door_left_open": ("柜门长时间未关", "left open"),
    "tech.alarm_unlock_failed": ("开锁失败", "did not unlock"),
    "tech.alarm_inventory_failed": ("图书清点失败", "could not be counted"),
    # doors
    "tech.doors_title": ("柜门测试", "Door test"),
    "tech.doors": ("柜门", "Doors"),
    "tech.doors_caption": ("每个柜门的控制板、锁和天线", "Each door's board, lock and antenna"),
    "tech.unlock_hint": ("测试开锁会打开柜门并观察门磁是否跟随。书柜会把这次开门记为报警，关门后自动清点。",
                         "A test-unlock opens the door and watches whether its sensor follows. "
                         "The cabinet records the opening as an alarm and counts the door "
                         "when it is closed."),
    "tech.col_door": ("柜门", "Door"),
    "tech.col_board": ("控制板", "Board"),
    "tech.col_lock": ("锁", "Lock"),
    "tech.col_antenna": ("天线", "Antenna"),
    "tech.col_accessible": ("无障碍高度", "Accessible height"),
    "tech.col_action": ("操作", "Action"),
    "tech.unlock": ("测试开锁", "Test-unlock"),
    "tech.unlock_door": ("测试开锁 {door}号门", "Test-unlock door {door}"),
    "tech.unlock_result": ("{door}号门测试结果", "Door {door}: test result"),
    "tech.lock": ("锁", "Lock"),
    "tech.pulsed": ("已通电开锁", "pulsed"),
    "tech.not_pulsed": ("未通电", "not pulsed"),
    "tech.board_lock": ("控制板 {board}，锁 {lock}", "board {board}, lock {lock}"),
    "tech.sensor": ("门磁", "Door sensor"),
    "tech.sensor_opened": ("门已打开（门磁检测到）", "opened (the sensor saw the door open)"),
    "tech.sensor_closed": ("门未打开（门磁未变化）", "stayed closed (the sensor did not change)"),
    "tech.time": ("用时", "Time"),
    "tech.close_doors": ("请关好以下柜门：{doors}。书柜会自动清点门内图书。",
                         "Close doors {doors}: the cabinet then counts their books."),
    "tech.close_door": ("请关好{door}号门，书柜会自动清点门内图书。",
                        "Close door {door}: the cabinet then counts its books."),
    # antennas
    "tech.inventory_title": ("天线盘点", "Antenna inventory"),
    "tech.rounds": ("盘点轮数", "Rounds"),
    "tech.auto_refresh": ("每 3 秒自动刷新", "Refresh every 3 seconds"),
    "tech.read_antenna": ("读取", "Read now"),
    "tech.inventory_of": ("{door}号门的标签", "Tags in door {door}"),
    "tech.inventory_caption": ("{door}号门（天线 {antenna}）：{count} 个标签，{rounds} 轮",
                               "Door {door} (antenna {antenna}): {count} tags, {rounds} "
                               "round(s)"),
    "tech.inventory_failed": ("{door}号门盘点失败：", "Door {door} could not be read:"),
    "tech.col_uid": ("标签 UID", "Tag UID"),
    "tech.col_item": ("条码号", "Item"),
    "tech.col_owner": ("所属馆", "Owner"),
    "tech.col_rssi": ("信号强度 RSSI", "RSSI"),
    "tech.col_seen": ("读到次数", "Seen"),
    "tech.col_error": ("错误", "Error"),
    # self-test
    "tech.selftest_title": ("自检", "Self-test"),
    "tech.selftest_intro": ("自检会检查每块控制板、读写器、天线和门锁，并指出故障部件。",
                            "The self-test checks every board, reader, antenna and lock and "
                            "names each faulty part."),
    "tech.selftest_unlock": ("自检并测试开锁每个柜门（柜门会打开）",
                             "Self-test and test-unlock every door (the doors will open)"),
    "tech.run_selftest": ("开始自检", "Run the self-test"),
    "tech.starting": ("正在开始……", "starting…"),
    "tech.selftest_running": ("自检进行中，请稍候。当前步骤：",
                              "The self-test is running; please wait. Current step:"),
    "tech.selftest_error": ("自检未能完成：", "The self-test could not finish:"),
    "tech.verdict_pass": ("自检通过", "Self-test passed"),
    "tech.verdict_fail": ("自检发现故障", "Self-test found faults"),
    "tech.took": ("用时 {seconds} 秒", "took {seconds} s"),
    "tech.parts_caption": ("各部件", "Each part"),
    "tech.col_part": ("部件", "Part"),
    "tech.col_result": ("结果", "Result"),
    # what a finding is about (kiosk.tech_subjects reads drivers.diag's subject forms)
    "tech.subject.door": ("{n}号门", "door {n}"),
    "tech.subject.list_sep": ("、", ", "),
    "tech.subject.board": ("控制板 {board}", "board {board}"),
    "tech.subject.board_on": ("控制板 {board}（{bus}）", "board {board} on {bus}"),
    "tech.subject.board_lock": ("控制板 {board} 的 {lock} 号锁", "board {board} lock {lock}"),
    "tech.subject.board_sensor": ("控制板 {board} 的 {sensor} 号门磁",
                                  "board {board} sensor {sensor}"),
    "tech.subject.bus": ("总线 {bus}", "bus {bus}"),
    "tech.subject.reader": ("RFID 读写器 {name}（{bus}）", "reader {name} on {bus}"),
    "tech.subject.antenna_doors": ("天线 {n}（{doors}）", "antenna {n} ({doors})"),
    "tech.subject.antenna_board": ("控制板 {board} 的天线 {n}", "antenna {n} of board {board}"),
    "tech.subject.card_reader": ("读卡器", "card reader"),
    "tech.subject.camera": ("摄像头", "camera"),
    # part and status words a finding carries as params (firmware_protocol PartKind, PartStatus)
    "tech.part.board": ("控制板", "board"),
    "tech.part.lock": ("锁", "lock"),
    "tech.part.door_sensor": ("门磁", "door sensor"),
    "tech.part.antenna": ("天线", "antenna"),
    "tech.part.memory": ("存储器", "memory"),
    "tech.part.power": ("电源", "power"),
    "tech.part_status.open_circuit": ("断路", "open circuit"),
    "tech.part_status.short_circuit": ("短路", "short circuit"),
    "tech.part_status.detuned": ("失谐", "detuned"),
    "tech.part_status.noisy": ("噪声过大", "noisy"),
    "tech.part_status.no_response": ("无响应", "no response"),
    "tech.part_status.fault": ("故障", "fault"),
    # findings of drivers.diag, by code
    "tech.finding.bus_unreachable": ("无法连接 {url}（{error}）——请检查串口转换器和线缆",
                                     "cannot reach {url} ({error}) — check the serial "
                                     "adapter/cable"),
    "tech.finding.not_answering": ("不应答——请检查线缆和电源",
                                   "not answering — check cable and power"),
    "tech.finding.usb_latency_timer": (
        "USB 转串口的延迟定时器为 {ms} 毫秒：每个应答都可能被延迟这么久——请设为 1 毫秒"
        "（echo 1 > /sys/bus/usb-serial/devices/{device}/latency_timer）",
        "USB-serial latency timer is {ms} ms: each reply may be held that long — set it to "
        "1 ms (echo 1 > /sys/bus/usb-serial/devices/{device}/latency_timer)"),
    "tech.finding.already_open": ("柜门已经开着——请关门后再测试",
                                  "already open — close it and test again"),
    "tech.finding.lock_jammed": ("锁卡住", "lock jammed"),
    "tech.finding.door_stayed_shut": (
        "已拉动锁舌，但弹簧门仍未弹开——锁卡住或 {lock} 号锁接线断开（{family} 控制板无法区分是哪一种）",
        "lock pulsed but the sprung door stayed shut — lock jammed or lock {lock} wiring "
        "broken ({family} boards cannot tell which)"),
    "tech.finding.unlock_not_confirmed": ("未能确认开锁——{error}",
                                          "unlock not confirmed — {error}"),
    "tech.finding.sensor_did_not_follow": ("门磁断路——请检查门磁接线",
                                           "door sensor open circuit — check sensor wiring"),
    "tech.finding.sensor_never_changed": ("已拉动锁舌，门磁始终未变化——请检查 {lock} 号锁的接线",
                                          "lock pulsed, door sensor never changed — check lock "
                                          "{lock} wiring"),
    "tech.finding.inventory_failed": ("盘点失败：{error}", "inventory failed: {error}"),
    "tech.finding.tag_rate_low": (
        "标签 {uid}（条码号 {item_id}）在 {rounds} 次盘点中只应答了 {seen} 次——被相邻图书干扰而失谐或"
        "摆放不当，请重新摆放",
        "tag {uid} (item {item_id}) answered {seen} of {rounds} inventories — detuned by a "
        "neighbouring book or badly placed; reposition it"),
    "tech.finding.unknown_tag_rate_low": (
        "标签 {uid}（未知图书）在 {rounds} 次盘点中只应答了 {seen} 次——被相邻图书干扰而失谐或摆放不当，"
        "请重新摆放",
        "tag {uid} (unknown item) answered {seen} of {rounds} inventories — detuned by a "
        "neighbouring book or badly placed; reposition it"),
    "tech.finding.tag_undecodable": ("标签 {uid} 有应答，但其数据无法解码（{reason}）——请给这本书重新贴标签",
                                     "tag {uid} answers but its data cannot be decoded "
                                     "({reason}) — re-tag the item"),
    "tech.finding.tag_data_unread": ("标签 {uid} 应答了盘点，但没有应答数据读取（{error}）——失谐或摆放不当",
                                     "tag {uid} answered the inventory but not the read of its "
                                     "data ({error}) — detuned or badly placed"),
    "tech.finding.item_missing": ("应有条码号为 {item_id} 的图书，但 {rounds} 次盘点均未读到——"
                                  "标签损坏或图书不在",
                                  "item {item_id} expected but not seen in {rounds} inventory "
                                  "round(s) — tag dead or missing"),
    "tech.finding.item_missing_or_undecodable": (
        "应有条码号为 {item_id} 的图书，但 {rounds} 次盘点均未读到——标签损坏或图书不在"
        "（也可能是无法解码的标签之一）",
        "item {item_id} expected but not seen in {rounds} inventory round(s) — tag dead or "
        "missing (or it is one of the undecodable tags)"),
    "tech.finding.tags_missing": ("应有 {expected} 个标签，{rounds} 次盘点只读到 {seen} 个——"
                                  "有标签损坏或图书缺失",
                                  "{expected} tags expected, {seen} seen in {rounds} inventory "
                                  "round(s) — a tag is dead or a book is missing"),
    "tech.finding.forced_open": ("柜门被强行打开", "forced open"),
    "tech.finding.left_open": ("柜门未关（长时间未关报警）", "left open (held-open alarm)"),
    "tech.finding.open_now": ("柜门开着——请关门（尚未触发长时间未关报警）",
                              "open — close it (no held-open alarm yet)"),
    "tech.finding.was_left_open": ("曾长时间未关（报警），现已关闭",
                                   "was left open (held-open alarm), closed since"),
    "tech.finding.tamper": ("防拆开关触发——请检查机壳", "tamper switch triggered — check the housing"),
    "tech.finding.power_lost_once": ("曾断电 1 次", "power was lost (once)"),
    "tech.finding.power_lost": ("曾断电 {times} 次", "power was lost ({times} times)"),
    "tech.finding.selftest_interrupted": ("自检中断：{error}", "self-test interrupted: {error}"),
    "tech.finding.lock_coil": ("锁线圈{status}——请检查 {lock} 号锁的接线",
                               "lock coil {status} — check lock {lock} wiring"),
    "tech.finding.door_sensor": ("门磁{status}——请检查门磁接线",
                                 "door sensor {status} — check sensor wiring"),
    "tech.finding.board_part": ("{part}{status}——请更换控制板", "{part} {status} — replace the board"),
    "tech.finding.antenna_diag_failed": ("天线诊断失败：{error}", "antenna diagnosis failed: {error}"),
    "tech.finding.antenna_detuned": ("天线失谐，反射 {permille}‰——请检查天线线缆和调谐",
                                     "detuned, reflected {permille}‰ — check antenna "
                                     "cable/tuning"),
    "tech.finding.antenna_noisy": ("噪声底 {dbm} dBm——有干扰",
                                   "noise floor {dbm} dBm — interference"),
    "tech.finding.bus_past_timeout": (
        "应答平均迟到 {ms} 毫秒，超过 {timeout_ms} 毫秒的应答超时：请求会超时并重发——请检查转换器或 USB "
        "延迟定时器（该总线上的控制板未做进一步测试）",
        "replies {ms} ms late on average, past the {timeout_ms} ms reply timeout: requests "
        "time out and are re-sent — check the converter/USB latency timer (its boards were "
        "not tested further)"),
    "tech.finding.bus_slow": ("应答平均迟到 {ms} 毫秒——请检查转换器或 USB 延迟定时器",
                              "replies {ms} ms late on average — check the converter/USB "
                              "latency timer"),
    "tech.finding.link_errors": ("{percent}% 的帧损坏或丢失——请检查 RS-485 接线和终端电阻",
                                 "{percent}% of frames corrupted or lost — check RS-485 "
                                 "wiring/termination"),
    "tech.finding.unavailable": ("不可用——{reason}", "unavailable — {reason}"),
    "tech.finding.degraded": ("性能降级——{reason}", "degraded — {reason}"),
    "tech.finding.card_refused": ("卡片拒绝了 GET DATA 命令（SW {sw}）——本读卡器无法识别这种卡",
                                  "the card refused GET DATA (SW {sw}) — not a card this reader "
                                  "can identify"),
    "tech.finding.card_unreadable": ("检测到卡片但无法读取（{error}）——请把卡平稳地放在读卡器上再试一次",
                                     "card present but unreadable ({error}) — hold it still on "
                                     "the reader and try again"),
    "tech.finding.card_no_answer": ("读卡器无应答（{error}）", "no answer ({error})"),
    "tech.finding.no_card": ("{seconds} 秒内未读到卡片——请把卡平放在读卡器上；"
                             "如果卡已放好，请检查读卡器的天线",
                             "no card within {seconds} s — hold a card flat on the reader; if "
                             "one was there, check the reader's antenna"),
    "tech.finding.no_codes_seen": ("{frames} 帧画面中未识别到二维码或 ISBN",
                                   "no QR code or ISBN seen in {frames} frames"),
}
