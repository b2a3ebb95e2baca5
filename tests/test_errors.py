from clipprompt.errors import UserError, exit_status


def test_exit_status_turns_user_errors_into_one_line_and_status_2(capsys):
    def bad():
        raise UserError("split file not found: /x.json (see DATASETS.md)")

    assert exit_status(bad) == 2
    assert capsys.readouterr().err == "error: split file not found: /x.json (see DATASETS.md)\n"
    assert exit_status(lambda: None) == 0
    assert exit_status(lambda: 1) == 1
    assert exit_status(lambda: {"report": 1}) == 0  # a returned report is not a status
