"""
``user_tasks.utils``: 4.0's protocol-2 helpers, with 4.0's exact results.

Our own chain tracking reads messages with ``canvas.message_from_proto2`` (tested at the
end), so it does not depend on what these public helpers return.
"""
from unittest import mock

import celery

from user_tasks import canvas, utils

PROTO1_KEYS = {'id', 'task', 'retries', 'eta', 'expires', 'utc', 'taskset', 'timelimit'}


def test_chain_module_attribute_is_celerys():
    assert utils.chain is celery.chain


def test_extract_proto2_headers_returns_exactly_the_eight_protocol_1_keys():
    headers = {'lang': 'py', 'task': 'tests.tasks.sample_task', 'id': 'abc', 'retries': 2, 'eta': 'ETA',
               'expires': 'EXP', 'group': 'g1', 'timelimit': [10, 20], 'root_id': 'root', 'parent_id': 'parent',
               'shadow': None, 'argsrepr': '()', 'origin': 'gen@host'}
    assert utils.extract_proto2_headers(**headers) == {
        'id': 'abc', 'task': 'tests.tasks.sample_task', 'retries': 2, 'eta': 'ETA', 'expires': 'EXP', 'utc': True,
        'taskset': 'g1', 'timelimit': [10, 20]}


def test_extract_proto2_headers_defaults():
    assert utils.extract_proto2_headers(id='abc') == {
        'id': 'abc', 'task': None, 'retries': 0, 'eta': None, 'expires': None, 'utc': True, 'taskset': None,
        'timelimit': (None, None)}


def test_extract_proto2_embed_as_4_0():
    assert utils.extract_proto2_embed(callbacks=['cb'], errbacks=['eb'], task_chain=['t'], chord='body') == {
        'callbacks': ['cb'], 'errbacks': ['eb'], 'chain': ['t'], 'chord': 'body'}
    assert utils.extract_proto2_embed() == {'callbacks': [], 'errbacks': None, 'chain': None, 'chord': None}


def test_extract_proto2_embed_takes_chain_from_task_chain_only():
    """4.0 read ``task_chain``; Celery's own ``chain`` embed key is not part of the result."""
    assert utils.extract_proto2_embed(chain=['third', 'second'])['chain'] is None


def test_proto2_to_proto1_as_4_0():
    body = ((1, 'x'), {'steps': 2}, {'callbacks': None, 'errbacks': None, 'chain': None, 'chord': None})
    headers = {'lang': 'py', 'task': 'tests.tasks.sample_task', 'id': 'abc', 'group': None, 'retries': 0,
               'root_id': 'abc', 'parent_id': None}
    assert utils.proto2_to_proto1(body, headers) == {
        'id': 'abc', 'task': 'tests.tasks.sample_task', 'retries': 0, 'eta': None, 'expires': None, 'utc': True,
        'taskset': None, 'timelimit': (None, None),
        'callbacks': [], 'errbacks': None, 'chord': None, 'args': (1, 'x'), 'kwargs': {'steps': 2}}


def test_proto2_to_proto1_appends_chain_built_with_the_module_attribute():
    embed = {'callbacks': ['cb'], 'task_chain': ['third', 'second']}
    with mock.patch.object(utils, 'chain') as chain:
        message = utils.proto2_to_proto1(((1,), {}, embed), {'id': 'abc'})
    chain.assert_called_once_with(['third', 'second'])
    assert message['callbacks'] == ['cb', chain.return_value]
    assert 'chain' not in message


def test_proto2_to_proto1_does_not_change_the_callers_embed():
    """B5: 4.0 appended to the caller's callbacks list; ours copies it first."""
    callbacks, task_chain = ['cb'], ['third', 'second']
    embed = {'callbacks': callbacks, 'task_chain': task_chain}
    with mock.patch.object(utils, 'chain'):
        utils.proto2_to_proto1(((1,), {}, embed), {'id': 'abc'})
    assert callbacks == ['cb'] and task_chain == ['third', 'second']
    assert embed == {'callbacks': ['cb'], 'task_chain': ['third', 'second']}


# -- what tracking reads instead (B3/B4) ---------------------------------------------------------

def test_tracking_reads_the_protocol_2_chain_and_ids():
    second = celery.signature('tests.tasks.sample_task', args=(1,), kwargs={'label': 'second'})
    third = celery.signature('tests.tasks.sample_task', args=(1,), kwargs={'label': 'third'})
    embed = {'chain': [dict(third), dict(second)], 'callbacks': None}
    headers = {'id': 'abc', 'task': 'tests.tasks.sample_task', 'root_id': 'root', 'parent_id': 'parent'}
    message = canvas.message_from_proto2(((1,), {}, embed), headers)
    (tail,) = message['callbacks']
    assert isinstance(tail, celery.canvas._chain)
    assert [sig['kwargs']['label'] for sig in tail.tasks] == ['second', 'third']
    assert (message['root_id'], message['parent_id']) == ('root', 'parent')
    assert embed['chain'] == [dict(third), dict(second)] and embed['callbacks'] is None


def test_tracking_reads_signature_objects():
    second = celery.signature('tests.tasks.sample_task', args=(1,), kwargs={'label': 'second'})
    third = celery.signature('tests.tasks.sample_task', args=(1,), kwargs={'label': 'third'})
    message = canvas.message_from_proto2(((1,), {}, {'chain': [third, second]}), {'id': 'abc'})
    (tail,) = message['callbacks']
    assert [sig['kwargs']['label'] for sig in tail.tasks] == ['second', 'third']
