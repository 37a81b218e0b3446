"""What the screen says, in Simplified Chinese (default) and English.

Why a catalogue: the machine speaks in keys (``borrow.put_back``, ``refused.denied``) so that
no sentence lives in code, the touchscreen can switch language with one tap, and every
refusal says plainly what happened and what to do next. ``{name}`` placeholders are filled
from the event's parameters; a missing parameter leaves the placeholder visible rather than
failing.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from .messages_services import SERVICES
from .messages_tech import TECH

__all__ = ["CATALOGUE", "LANGUAGES", "message", "reason_text"]

LANGUAGES = ("zh", "en")

CATALOGUE: dict[str, tuple[str, str]] = {
    # sessions
    "session.identifying": ("正在识别读者证……", "Checking your reader card…"),
    "session.finished": ("本次借阅完成，共借 {loans} 册。谢谢！",
                         "All done: {loans} book(s) borrowed. Thank you!"),
    "session.timeout": ("长时间无操作，已自动退出。", "Signed out after a while without activity."),
    "session.close_doors_first": ("请先关好柜门（{doors}号门）。",
                                  "Please close door(s) {doors} first."),
    "session.ended": ("", ""),
    "borrow.choose_door": ("请选择要打开的柜门。", "Choose a door to open."),
    "restock.choose_doors": ("工作人员补书：请选择柜门。", "Staff restock: choose the doors."),
    # doors
    "door.unlocked": ("{door}号门已开锁。", "Door {door} is unlocked."),
    "door.open": ("{door}号门已打开，请取书或放书，完成后关门。",
                  "Door {door} is open: take or put books, then close it."),
    "door.closed": ("{door}号门已关闭。", "Door {door} is closed."),
    "door.close_prompt": ("请关好{door}号门。", "Please close door {door}."),
    "door.unlock_failed": ("{door}号门未能打开，请选择其他柜门或联系工作人员。",
                           "Door {door} did not open. Choose another door or call staff."),
    "door.inventory_failed": ("{door}号门图书清点失败，工作人员会核对，您无需担心。",
                              "Door {door} could not be counted; staff will check it — "
                              "nothing is charged to you meanwhile."),
    "door.committed": ("", ""),
    "inventory.running": ("正在清点{door}号门内的图书……", "Counting the books in door {door}…"),
    # borrowing
    "borrow.loaned": ("借阅成功：{count} 册，请按时归还。",
                      "Borrowed: {count} book(s). Please return them on time."),
    "borrow.put_back": ("有图书不能借出，请放回{door}号门：{titles}",
                        "Some books cannot be borrowed: please put them back in door "
                        "{door}: {titles}"),
    # returning
    "return.accepted": ("已还书 {count} 册，谢谢！", "Returned: {count} book(s). Thank you!"),
    "return.done": ("还书完成。", "Return complete."),
    "return.full": ("柜子已满，暂不能还书，请到附近图书馆或其他书柜归还。",
                    "The cabinet is full. Please return at a nearby library or cabinet."),
    "return.remove_foreign": ("门内有非本馆物品，请取出。",
                              "Something in the door is not a library book: please take "
                              "it out."),
    "return.reposition": ("有图书未能识别，请调整摆放（书脊朝外）后关门。",
                          "A book could not be read: please reposition it (spine facing "
                          "out) and close the door."),
    # alarms
    "alarm": ("柜门报警，已通知工作人员。", "Door alarm: staff have been notified."),
    "alarm.item": ("异常已记录，工作人员会核对。", "Recorded for staff to check."),
    "alarm.door_left_open": ("{door}号门长时间未关，已通知工作人员。",
                             "Door {door} was left open: staff have been notified."),
    # why a credential is refused
    "refused.bad_credential": ("无法识别该证件，请重试。", "This card or code could not be read; "
                               "please try again."),
    "refused.unknown": ("未找到该读者证，请到服务台或在线办理电子读者证。",
                        "This card is not registered. Get an e-reader card online or at the "
                        "desk."),
    "refused.unknown_offline": ("网络暂不可用，无法识别此卡。请使用电子读者证二维码。",
                                "The network is down and this card is not known here. "
                                "Please use your e-reader card QR code."),
    "refused.blocked": ("读者证已被暂停借阅，请联系图书馆。",
                        "This reader card is blocked. Please contact the library."),
    "refused.expired": ("读者证已过期，请续办。", "This reader card has expired; please renew "
                        "it."),
    "refused.denied": ("该读者证暂不能借阅，请联系图书馆。",
                       "This card cannot borrow at the moment. Please contact the library."),
    "refused.no_grant": ("网络暂不可用，您的信用借阅额度未在本柜缓存。请稍后再试。",
                         "The network is down and your credit is not known here. Please try "
                         "again later."),
    "refused.grant_expired": ("信用借阅额度已过期，请联网后再试。",
                              "Your borrowing credit has expired; please try again when "
                              "online."),
    "refused.grant_bad_signature": ("信用额度无效。", "Your borrowing credit is not valid."),
    "refused.grant_unknown_key": ("信用额度无效。", "Your borrowing credit is not valid."),
    "refused.grant_not_yet_valid": ("信用额度尚未生效。", "Your borrowing credit is not yet "
                                    "valid."),
    "refused.token_expired": ("二维码已过期，请刷新后再扫。",
                              "This QR code has expired: refresh it and scan again."),
    "refused.token_replayed": ("二维码已使用过，请刷新后再扫。",
                               "This QR code was already used: refresh it and scan again."),
    "refused.token_not_yet_valid": ("二维码时间异常，请检查手机时间后刷新。",
                                    "This QR code's time is off: check your phone's clock "
                                    "and refresh."),
    "refused.token_malformed": ("无法识别该二维码。", "This QR code is not a reader card."),
    "refused.token_truncated": ("二维码不完整，请重新扫描。", "The QR code was not read "
                                "completely; scan again."),
    "refused.token_bad_signature": ("二维码无效。", "This QR code is not valid."),
    "refused.token_unknown_key": ("二维码无效，请更新读者证应用。",
                                  "This QR code is not valid: update your reader card app."),
    "refused.token_ttl_too_long": ("二维码无效。", "This QR code is not valid."),
    "refused.offline_allowance": ("网络中断期间您的离线借阅额度已用完，可以还书；联网后即可继续借阅。",
                                  "While the network is down your offline allowance is used "
                                  "up. You can still return books; borrowing resumes once "
                                  "the cabinet is online."),
    "refused.exposure_cap": ("网络中断期间本柜离线借阅已达上限，可以还书；请稍后再借或到附近书柜借阅。",
                             "This cabinet has reached its offline lending limit while the "
                             "network is down. You can still return books; borrow later or "
                             "at a nearby cabinet."),
    "refused.credential_expired": ("登录已超时，请重新刷卡或扫码。",
                                   "Your sign-in has timed out: tap your card or scan again."),
    # why an item is refused (reasons of kiosk.rules)
    "item.hold_for_other": ("已被其他读者预约", "reserved for another reader"),
    "item.reference_only": ("仅供馆内阅览", "reference only"),
    "item.limit_reached": ("已达借阅上限", "you have reached your loan limit"),
    "item.offline_allowance": ("网络中断期间您的离线借阅额度已用完",
                               "your offline borrowing allowance is used up while the "
                               "network is down"),
    "item.exposure_cap": ("网络中断期间本柜离线借阅已达上限",
                          "this cabinet's offline lending limit is reached while the "
                          "network is down"),
    # the reader touchscreen (kiosk/screens.py); "screen.other_language" names the other one
    "screen.title": ("自助借还书柜", "Self-service library cabinet"),
    "screen.welcome": ("欢迎使用 24 小时自助图书馆", "Welcome to the 24-hour self-service library"),
    "screen.location": ("位置", "Location"),
    "screen.hours": ("开放时间", "Opening hours"),
    "screen.hours_24h": ("24 小时", "24 hours"),
    "screen.help_line": ("服务电话", "Help line"),
    "screen.borrow": ("借书", "Borrow"),
    "screen.borrow_hint": ("刷读者证或扫电子读者证二维码", "Tap your reader card or scan your "
                           "e-reader QR code"),
    "screen.return": ("还书", "Return"),
    "screen.return_hint": ("无需登录，放书即可", "No sign-in needed"),
    "screen.return_accessible": ("无障碍柜门还书（较低位置）", "Return at an accessible (lower) door"),
    "screen.other_language": ("English", "中文"),
    "screen.language_label": ("切换语言", "Change language"),
    "screen.options": ("显示选项", "Display options"),
    "screen.text_large": ("大字模式", "Large text"),
    "screen.text_normal": ("正常字号", "Normal text"),
    "screen.contrast_high": ("高对比度", "High contrast"),
    "screen.contrast_normal": ("正常对比度", "Normal contrast"),
    "screen.return_open": ("{door}号门已打开：请把书放入（书脊朝外），然后关门。",
                           "Door {door} is open: put your books in (spine facing out), then "
                           "close the door."),
    "screen.return_counting": ("关门后书柜会自动清点，请稍候。",
                               "When the door is closed the cabinet counts the books; please "
                               "wait."),
    "screen.busy": ("书柜正在为其他读者服务，请稍候。", "The cabinet is serving another reader; "
                    "please wait a moment."),
    "screen.back": ("返回首页", "Back to start"),
    "screen.coming": ("借书页面将在第 6/6 期完成，现在请使用图书馆应用或服务台。",
                      "The borrowing screens are coming in issue 6/6; meanwhile please use the "
                      "library app or the desk."),
}


# Other screens keep their sentences in modules of their own (one owner each).
CATALOGUE.update(SERVICES)
CATALOGUE.update(TECH)


class _Lenient(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def message(key: str, lang: str = "zh", params: Mapping[str, Any] | None = None) -> str:
    """The sentence for ``key`` in ``lang`` (zh or en), with ``params`` filled in.

    An unknown key gives the key itself (visible, never a crash)."""
    pair = CATALOGUE.get(key)
    if pair is None:
        return key
    text = pair[0 if lang != "en" else 1]
    values = _Lenient({k: _plain(v) for k, v in (params or {}).items()})
    if "items" in (params or {}) and "count" not in values:
        values["count"] = len(params["items"])  # type: ignore[index]
    return string.Formatter().vformat(text, (), values)


def reason_text(reason: str, lang: str = "zh") -> str:
    """Why one item may not be taken (``kiosk.rules`` reason)."""
    return message("item." + reason, lang)


def _plain(v: Any) -> Any:
    if isinstance(v, list):
        return ", ".join(str(_plain(x)) for x in v)
    return v
