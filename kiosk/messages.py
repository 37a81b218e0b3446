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

__all__ = ["CATALOGUE", "CLC_CLASSES", "LANGUAGES", "message", "reason_text"]

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
    "refused.grant_bad_signature": ("信用额度无效，请在图书馆应用中刷新二维码后再试。",
                                  "Your borrowing credit is not valid: refresh the QR code in "
                                  "the library app and try again."),
    "refused.grant_unknown_key": ("信用额度无效，请在图书馆应用中刷新二维码后再试。",
                                  "Your borrowing credit is not valid: refresh the QR code in "
                                  "the library app and try again."),
    "refused.grant_not_yet_valid": ("信用额度尚未生效，请稍后再试或检查手机时间。",
                                    "Your borrowing credit is not valid yet: try again later or "
                                    "check your phone's clock."),
    "refused.token_expired": ("二维码已过期，请刷新后再扫。",
                              "This QR code has expired: refresh it and scan again."),
    "refused.token_replayed": ("二维码已使用过，请刷新后再扫。",
                               "This QR code was already used: refresh it and scan again."),
    "refused.token_not_yet_valid": ("二维码时间异常，请检查手机时间后刷新。",
                                    "This QR code's time is off: check your phone's clock "
                                    "and refresh."),
    "refused.token_malformed": ("无法识别该二维码，请打开图书馆应用中的电子读者证二维码。",
                                "This QR code is not a reader card: open the e-reader card in "
                                "the library app."),
    "refused.token_truncated": ("二维码不完整，请重新扫描。", "The QR code was not read "
                                "completely; scan again."),
    "refused.token_bad_signature": ("二维码无效，请在图书馆应用中刷新后再扫。",
                                    "This QR code is not valid: refresh it in the library app "
                                    "and scan again."),
    "refused.token_unknown_key": ("二维码无效，请更新读者证应用。",
                                  "This QR code is not valid: update your reader card app."),
    "refused.token_ttl_too_long": ("二维码无效，请在图书馆应用中刷新后再扫。",
                                   "This QR code is not valid: refresh it in the library app "
                                   "and scan again."),
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
    "item.hold_for_other": ("已被其他读者预约，您可以在图书馆应用中预约它",
                            "reserved for another reader; you can place a hold on it in the "
                            "library app"),
    "item.reference_only": ("仅供馆内阅览", "reference only"),
    "item.limit_reached": ("已达借阅上限，请先还书再借",
                           "you have reached your loan limit; return a book first"),
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
    # identify (kiosk/screens_reader.py)
    "screen.identify": ("借书：请刷卡或扫码", "Borrow: tap your card or show your QR code"),
    "screen.identify_card": ("把读者证放在屏幕下方的读卡区。", "Hold your reader card on the card "
                             "reader below the screen."),
    "screen.identify_qr": ("或把电子读者证二维码对准摄像头。", "Or hold your e-reader card QR code "
                           "up to the camera."),
    "screen.identify_waiting": ("正在等待读者证……", "Waiting for your card…"),
    "screen.type_card": ("没有带卡？输入读者证号", "No card with you? Type your card number"),
    "screen.card_number": ("读者证号", "Card number"),
    "screen.type_card_go": ("确定", "Continue"),
    "screen.refused_title": ("无法开始借书", "Borrowing could not start"),
    "screen.refused_next": ("您仍可以无需登录直接还书。需要帮助请拨打服务电话 {help_line}。",
                            "You can still return books without signing in. For help call "
                            "{help_line}."),
    "screen.refused_next_nohelp": ("您仍可以无需登录直接还书。需要帮助请到图书馆服务台。",
                                   "You can still return books without signing in. For help "
                                   "ask at the library desk."),
    "screen.try_again": ("重新刷卡或扫码", "Try again"),
    # browse by door and by class
    "screen.doors": ("选择柜门", "Choose a door"),
    "screen.doors_browse": ("看看柜里有什么书", "See what is in the cabinet"),
    "screen.door_n": ("{door}号门", "Door {door}"),
    "screen.door_count": ("{count} 册", "{count} book(s)"),
    "screen.door_accessible": ("低位柜门（轮椅可及）", "Accessible door (lower)"),
    "screen.accessible_first": ("低位柜门优先", "Accessible doors first"),
    "screen.doors_in_order": ("按门号排列", "Doors in number order"),
    "screen.class_filter": ("按中图法分类筛选", "Filter by library class (中图法)"),
    "screen.class_all": ("全部", "All"),
    "screen.class_unknown": ("未分类", "Not classified"),
    "screen.no_match": ("此门没有该类图书。", "No books of this class in this door."),
    "screen.door_empty": ("此门是空的。", "This door is empty."),
    "screen.open_door": ("打开{door}号门", "Open door {door}"),
    "screen.door_in_use": ("{door}号门正在使用", "Door {door} is in use"),
    "screen.sign_in_first": ("请先刷卡或扫码，再选择柜门。", "Tap your card or show your QR code "
                             "first, then choose a door."),
    "screen.untitled": ("（书名未知）", "(title unknown)"),
    # the live session
    "screen.session": ("借书", "Borrowing"),
    "screen.session_none": ("现在没有进行中的借书。", "No borrowing is in progress."),
    "screen.choose_door": ("选择柜门", "Choose a door"),
    "screen.finish": ("完成", "Finish"),
    "screen.services": ("更多服务", "More services"),
    "screen.my_loans": ("我的借阅与续借", "My loans and renewals"),
    "screen.my_holds": ("我的预约", "My holds"),
    "screen.recommend": ("荐购图书", "Suggest a book to buy"),
    "screen.hold_door": ("您预约的图书在{door}号门，门已为您打开：请取书后关门。",
                         "Your reserved book is in door {door}; it is open for you: take it, "
                         "then close the door."),
    "screen.door_state_unlocking": ("{door}号门正在开锁……", "Unlocking door {door}…"),
    "screen.door_state_counting": ("{door}号门已关闭，正在清点图书……",
                                   "Door {door} is closed: counting the books…"),
    "screen.borrowed": ("您借了：", "You borrowed:"),
    "screen.due": ("应还日期 {due}", "due {due}"),
    "screen.returned": ("已收到：", "Received:"),
    "screen.live_log": ("刚才的提示", "What just happened"),
    "screen.alarm_title": ("请关门", "Please close the door"),
    # need more time?
    "session.more_time": ("还需要时间吗？{seconds} 秒后将自动退出。",
                          "Do you need more time? You will be signed out in {seconds} s."),
    "screen.more_time_q": ("还需要时间吗？", "Do you need more time?"),
    "screen.more_time_left": ("<span data-countdown>{seconds}</span> 秒后将自动退出。",
                              "You will be signed out in <span data-countdown>{seconds}</span> "
                              "s."),
    "screen.more_time": ("需要更多时间", "I need more time"),
    "screen.page_left": ("<span data-countdown>{seconds}</span> 秒后自动回到开始页面。",
                         "Going back to the first page in <span data-countdown>{seconds}</span> s."),
    # receipt and rating
    "screen.receipt": ("借阅凭条", "Receipt"),
    "screen.receipt_hint": ("用手机拍下二维码，保存您的借阅凭条。",
                            "Take a photo of the QR code to keep your receipt."),
    "screen.receipt_none": ("没有可显示的凭条。", "There is no receipt to show."),
    "screen.receipt_nothing": ("本次没有借书。", "Nothing was borrowed this time."),
    "screen.receipt_qr": ("借阅凭条二维码", "Receipt QR code"),
    "receipt.head": ("借阅凭条 {cabinet} {date}", "Receipt {cabinet} {date}"),
    "receipt.line": ("{n}. {title}（{item_id}）应还 {due}", "{n}. {title} ({item_id}) due {due}"),
    "screen.rate_q": ("您对本次服务满意吗？", "How satisfied are you with this visit?"),
    "screen.rate_1": ("1 很不满意", "1 very unhappy"),
    "screen.rate_2": ("2 不满意", "2 unhappy"),
    "screen.rate_3": ("3 一般", "3 okay"),
    "screen.rate_4": ("4 满意", "4 happy"),
    "screen.rate_5": ("5 很满意", "5 very happy"),
    "screen.rate_thanks": ("谢谢您的评价！", "Thank you for your rating!"),
    "screen.rate_none": ("现在没有可以评价的服务。", "There is no visit to rate now."),
    # returning
    "screen.return_recognised": ("识别到的图书：", "Books recognised:"),
    "screen.goes_home": ("其他馆的图书，已收下，将送回{home}。",
                         "From another library: accepted, it goes home to {home}."),
    "screen.goes_home_branch": ("不属于本柜的图书，已收下，工作人员会把它送回所属分馆。",
                                "Not one of this cabinet's books: accepted, staff will send it "
                                "home to its branch."),
    "screen.return_none": ("没有识别到新放入的图书。如果您放了书，请联系工作人员。",
                           "No new book was recognised. If you put one in, please call staff."),
    # speech
    "screen.speech_on": ("开启语音提示", "Turn spoken prompts on"),
    "screen.speech_off": ("关闭语音提示", "Turn spoken prompts off"),
    # the 22 top-level classes of the Chinese Library Classification (中图法)
    "clc.A": ("马克思主义、列宁主义、毛泽东思想、邓小平理论",
              "Marxism-Leninism, Mao Zedong Thought, Deng Xiaoping Theory"),
    "clc.B": ("哲学、宗教", "Philosophy and religion"),
    "clc.C": ("社会科学总论", "Social sciences (general)"),
    "clc.D": ("政治、法律", "Politics and law"),
    "clc.E": ("军事", "Military science"),
    "clc.F": ("经济", "Economics"),
    "clc.G": ("文化、科学、教育、体育", "Culture, science, education and sport"),
    "clc.H": ("语言、文字", "Languages and writing"),
    "clc.I": ("文学", "Literature"),
    "clc.J": ("艺术", "Art"),
    "clc.K": ("历史、地理", "History and geography"),
    "clc.N": ("自然科学总论", "Natural sciences (general)"),
    "clc.O": ("数理科学和化学", "Mathematics, physics and chemistry"),
    "clc.P": ("天文学、地球科学", "Astronomy and earth sciences"),
    "clc.Q": ("生物科学", "Life sciences"),
    "clc.R": ("医药、卫生", "Medicine and health"),
    "clc.S": ("农业科学", "Agricultural sciences"),
    "clc.T": ("工业技术", "Industrial technology"),
    "clc.U": ("交通运输", "Transport"),
    "clc.V": ("航空、航天", "Aviation and spaceflight"),
    "clc.X": ("环境科学、安全科学", "Environmental and safety sciences"),
    "clc.Z": ("综合性图书", "General works"),
}

#: The 中图法's top-level class letters (L, M, W and Y are not used by it).
CLC_CLASSES = tuple("ABCDEFGHIJKNOPQRSTUVXZ")


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
