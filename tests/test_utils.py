"""``user_tasks.utils``: protocol 2 messages read as protocol 1."""
from unittest import mock

import celery

from user_tasks import utils


def test_chain_module_attribute_is_celerys():
    assert utils.chain is celery.chain


def test_extract_proto2_headers():
    headers = {'lang': 'py', 'task': 'tests.tasks.sample_task', 'id': 'abc', 'retries': 2, 'eta': 'ETA',
               'expires': 'EXP', 'group': 'g1', 'timelimit': [10, 20], 'root_id': 'root', 'parent_id': 'parent',
               'shadow': None, 'argsrepr': '()', 'origin': 'gen@host'}
    assert utils.extract_proto2_headers(**headers) == {
        'id': 'abc', 'task': 'tests.tasks.sample_task', 'retries': 2, 'eta': 'ETA', 'expires': 'EXP', 'utc': True,
        'taskset': 'g1', 'timelimit': [10, 20], 'root_id': 'root', 'parent_id': 'parent'}


def test_extract_proto2_headers_defaults():
    assert utils.extract_proto2_headers(id='abc') == {
        'id': 'abc', 'task': None, 'retries': 0, 'eta': None, 'expires': None, 'utc': True, 'taskset': None,
        'timelimit': (None, None), 'root_id': None, 'parent_id': None}


def test_extract_proto2_embed_without_chain():
    assert utils.extract_proto2_embed(callbacks=['cb'], errbacks=['eb'], chord='body') == {
        'callbacks': ['cb'], 'errbacks': ['eb'], 'chord': 'body'}
    assert utils.extract_proto2_embed() == {'callbacks': None, 'errbacks': None, 'chord': None}


def test_extract_proto2_embed_chain_becomes_first_callback():
    with mock.patch.object(utils, 'chain') as chain:
        embed = utils.extract_proto2_embed(callbacks=['cb'], chain=['third', 'second'])
    chain.assert_called_once_with(['second', 'third'])
    assert embed['callbacks'] == [chain.return_value, 'cb']


def test_extract_proto2_embed_does_not_change_its_input():
    callbacks, chain = ['cb'], ['third', 'second']
    with mock.patch.object(utils, 'chain'):
        utils.extract_proto2_embed(callbacks=callbacks, chain=chain)
    assert callbacks == ['cb'] and chain == ['third', 'second']


def test_proto2_to_proto1():
    body = ((1, 'x'), {'steps': 2}, {'callbacks': None, 'errbacks': None, 'chain': None, 'chord': None})
    headers = {'lang': 'py', 'task': 'tests.tasks.sample_task', 'id': 'abc', 'group': None, 'retries': 0,
               'root_id': 'abc', 'parent_id': None}
    assert utils.proto2_to_proto1(body, headers) == {
        'id': 'abc', 'task': 'tests.tasks.sample_task', 'retries': 0, 'eta': None, 'expires': None, 'utc': True,
        'taskset': None, 'timelimit': (None, None), 'root_id': 'abc', 'parent_id': None,
        'callbacks': None, 'errbacks': None, 'chord': None, 'args': (1, 'x'), 'kwargs': {'steps': 2}}


def test_proto2_to_proto1_with_chain_uses_real_chain():
    second = celery.signature('tests.tasks.sample_task', args=(1,), kwargs={'label': 'second'})
    third = celery.signature('tests.tasks.sample_task', args=(1,), kwargs={'label': 'third'})
    body = ((1,), {}, {'chain': [dict(third), dict(second)]})
    message = utils.proto2_to_proto1(body, {'id': 'abc', 'task': 'tests.tasks.sample_task'})
    (tail,) = message['callbacks']
    assert isinstance(tail, celery.canvas._chain)
    assert [sig['kwargs']['label'] for sig in tail.tasks] == ['second', 'third']
    assert body[2]['chain'] == [dict(third), dict(second)]


def test_proto2_to_proto1_with_signature_objects():
    second = celery.signature('tests.tasks.sample_task', args=(1,), kwargs={'label': 'second'})
    third = celery.signature('tests.tasks.sample_task', args=(1,), kwargs={'label': 'third'})
    message = utils.proto2_to_proto1(((1,), {}, {'chain': [third, second]}), {'id': 'abc'})
    (tail,) = message['callbacks']
    assert [sig['kwargs']['label'] for sig in tail.tasks] == ['second', 'third']
