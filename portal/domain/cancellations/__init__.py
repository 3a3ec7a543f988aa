"""Cancellation requests, the process that replaced the team's shared spreadsheet.

    choices     the short lists: channels, reasons, offers, answers, outcomes
    fields      reading a request's fields (phone numbers in E.164, dates, money, months)
    requests    logging a request, what the form is filled in with, reading one
    log         the log: filters, keyset pages, the CSV rows
    retention   retention attempts and the outcome (retained, paused, withdrawn); pauses ending by themselves
    cancelling  cancelling an account, writing off its open invoices in the same transaction
    importing   the old spreadsheet (.xlsx or .csv): preview, then import once
    overview    requests per week, save rate, reasons and monthly revenue kept
"""
