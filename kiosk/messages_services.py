"""The reader-services screens' sentences (zh, en); merged into kiosk.messages.CATALOGUE."""

from __future__ import annotations

SERVICES: dict[str, tuple[str, str]] = {
    # navigation
    "services.back_session": ("返回本次借阅", "Back to my session"),
    "services.nav": ("读者服务", "Reader services"),
    "services.not_identified": ("请先刷读者证或扫电子读者证二维码。",
                                "Please tap your reader card or scan your e-reader QR code "
                                "first."),
    # my loans
    "services.loans": ("我的借阅", "My loans"),
    "services.loans_none": ("您目前没有借阅的图书。", "You have no books on loan."),
    "services.loans_count": ("共 {count} 册。每册最多可续借 {max} 次。",
                             "{count} book(s). Each loan can be renewed up to {max} times."),
    "services.loans_offline": ("网络暂不可用：下面只是本柜记录的借阅，可能不完整"
                               "（在其他书柜或图书馆的借阅和还书不在其中）。"
                               "续借需要联网，请稍后再试或使用图书馆 App。",
                               "The network is down: below are only the loans this cabinet "
                               "recorded — loans and returns elsewhere are not included. "
                               "Renewing needs the network: try again later or use the "
                               "library app."),
    "services.due": ("应还日期：{due}", "Due: {due}"),
    "services.due_unknown": ("应还日期未知", "Due date unknown"),
    "services.overdue": ("已逾期，请尽快归还。", "Overdue: please return it soon."),
    "services.wanted": ("已有其他读者预约，不能续借。", "Another reader has reserved it: it "
                        "cannot be renewed."),
    "services.renewals": ("已续借 {count} 次", "Renewed {count} time(s)"),
    "services.renew": ("续借", "Renew"),
    "services.renew_label": ("续借《{title}》", "Renew “{title}”"),
    # renewal outcomes
    "services.renewed": ("续借成功：《{title}》新的应还日期是 {due}。",
                         "Renewed: “{title}” is now due on {due}."),
    "services.renew_refused": ("未能续借《{title}》", "“{title}” was not renewed"),
    "services.refused_held_for_another": ("其他读者已预约这本书，不能续借。请在应还日期前归还，"
                                          "以便下一位读者借阅。",
                                          "Another reader has reserved this book, so it cannot "
                                          "be renewed. Please return it by its due date so "
                                          "they can borrow it."),
    "services.refused_overdue": ("这本书逾期太久，不能续借。请先归还，还书后即可再借。",
                                 "This loan is too far overdue to renew. Please return it "
                                 "first; you can borrow it again afterwards."),
    "services.refused_renewal_limit": ("这本书已达到续借次数上限。请按时归还，如需继续阅读，"
                                       "可归还后再借。",
                                       "This loan has been renewed the most times allowed. "
                                       "Please return it on time; you can borrow it again "
                                       "after returning it."),
    "services.refused_not_your_loan": ("这本书不在您的借阅记录中（可能已经归还）。请刷新借阅列表。",
                                       "This book is not on your loans (it may already be "
                                       "returned). Please look at your loans again."),
    "services.refused_offline": ("网络暂不可用，现在无法续借。请稍后再试或使用图书馆 App。",
                                 "The network is down, so renewing is not possible now. "
                                 "Please try again later or use the library app."),
    "services.refused_busy": ("服务器繁忙，请稍后再试。", "The library's server is busy: "
                              "please try again in a moment."),
    "services.refused_other": ("服务器未接受该请求，请联系工作人员。",
                               "The library did not accept this request: please ask staff."),
    # holds
    "services.holds": ("我的预约取书", "My holds"),
    "services.holds_none": ("本柜没有为您保留的预约图书。", "No reserved books are waiting for "
                            "you in this cabinet."),
    "services.hold_open": ("{door}号门已打开：请取出《{title}》，然后关门，这本书就借给您了。",
                           "Door {door} is open: take “{title}” out, then close the door — "
                           "the book is then on loan to you."),
    "services.hold_in_door": ("《{title}》在{door}号门，保留至 {until}。",
                              "“{title}” is in door {door}, kept for you until {until}."),
    "services.hold_taken": ("《{title}》已借出给您。", "“{title}” is on loan to you now."),
    "services.hold_coming": ("《{title}》正在送往本柜，到柜后会通知您。",
                             "“{title}” is on its way to this cabinet; you will be told when "
                             "it arrives."),
    "services.hold_reopen": ("如果柜门已关而书还在柜内，请返回本次借阅，选择{door}号门重新打开。",
                             "If the door closed with the book still inside, go back to your "
                             "session and choose door {door} to open it again."),
    # 荐购
    "services.recommend": ("荐购图书", "Suggest a book to buy"),
    "services.recommend_hint": ("输入图书的 ISBN（10 位或 13 位，可带连字符），或把书背面的条码对准摄像头。",
                                "Type the book's ISBN (10 or 13 digits, hyphens are fine), or "
                                "hold the barcode on the back of the book to the camera."),
    "services.isbn": ("ISBN", "ISBN"),
    "services.title_optional": ("书名（可不填）", "Title (optional)"),
    "services.send": ("提交荐购", "Send suggestion"),
    "services.scan": ("扫描条码", "Scan the barcode"),
    "services.scan_hint": ("点按后，请在 {seconds} 秒内把条码对准摄像头。",
                           "After tapping, hold the barcode to the camera within {seconds} "
                           "seconds."),
    "services.scan_none": ("没有读到条码。请把条码放平、靠近摄像头后再试一次，或直接输入 ISBN。",
                           "No barcode was read. Hold it flat and closer to the camera and "
                           "try again, or type the ISBN."),
    "services.scanned": ("已读到条码：{isbn}", "Barcode read: {isbn}"),
    "services.recommended": ("荐购已提交（ISBN {isbn}）。图书馆审核后会通知您，"
                             "您也可以在图书馆 App 中查看进度。",
                             "Your suggestion was sent (ISBN {isbn}). The library will review "
                             "it and let you know; you can follow it in the library app."),
    "services.recommended_title": ("荐购已提交（《{title}》）。图书馆审核后会通知您。",
                                   "Your suggestion was sent (“{title}”). The library will "
                                   "review it and let you know."),
    "services.recommend_offline": ("网络暂不可用，荐购没有发送，本柜也不会保存。"
                                   "请稍后再试，或使用图书馆 App 荐购。",
                                   "The network is down: your suggestion was not sent, and "
                                   "this cabinet does not keep it. Please try again later or "
                                   "use the library app."),
    "services.recommend_need": ("请输入 ISBN 或书名。", "Please type an ISBN or a title."),
    "services.isbn_empty": ("请输入 ISBN。", "Please type an ISBN."),
    "services.isbn_characters": ("ISBN 只能包含数字、连字符和末位的 X，请检查后重新输入。",
                                 "An ISBN has only digits, hyphens and a final X: please "
                                 "check it and type it again."),
    "services.isbn_x_position": ("只有 10 位 ISBN 的最后一位可以是 X，请检查后重新输入。",
                                 "Only the last character of a 10-digit ISBN may be X: "
                                 "please check it."),
    "services.isbn_length": ("ISBN 应为 10 位或 13 位，您输入了 {count} 位。",
                             "An ISBN has 10 or 13 digits; you typed {count}."),
    "services.isbn_check_digit": ("ISBN 校验位不符，可能有输入错误，请对照书背面重新输入。",
                                  "The ISBN's check digit does not match — probably a typo. "
                                  "Please compare it with the back of the book."),
    # spoken prompts
    "services.speech_unknown": ("没有这句提示（key 或 lang 不对）。",
                                "There is no such prompt (unknown key or lang)."),
    "services.speech_params": ("提示的参数太多或太长。", "Too many or too long parameters."),
    "services.speech_empty": ("这句提示没有可朗读的内容。", "This prompt has nothing to say."),
    "services.speech_none": ("本柜没有语音引擎（未安装 espeak-ng），无法朗读提示。",
                             "No spoken prompts: espeak-ng is not installed on this cabinet."),
}
