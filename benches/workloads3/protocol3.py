"""Python classes for the StateFun 3.x protocol, built from the repository's own proto files
(proto/v3/request-reply.proto, types.proto, egress.proto), not from the SDK.

gen/protocol_v3.pb is the FileDescriptorSet that protoc 3.21.6 writes for those files
(gen_protos.sh). It is loaded into a private DescriptorPool: the Python SDK registers its own copy
of the io.statefun.sdk.* messages in the default pool, and the two must not collide.
"""
import os

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_HERE = os.path.dirname(os.path.abspath(__file__))

with open(os.path.join(_HERE, "gen", "protocol_v3.pb"), "rb") as _f:
    _fds = descriptor_pb2.FileDescriptorSet.FromString(_f.read())

POOL = descriptor_pool.DescriptorPool()
for _file in _fds.file:
    POOL.Add(_file)
_FACTORY = message_factory.MessageFactory(POOL)


def message_class(full_name):
    """The class of any message in the pool, nested ones included."""
    return _FACTORY.GetPrototype(POOL.FindMessageTypeByName(full_name))


_RR = "io.statefun.sdk.reqreply."
Address = message_class(_RR + "Address")
TypedValue = message_class(_RR + "TypedValue")
ToFunction = message_class(_RR + "ToFunction")
FromFunction = message_class(_RR + "FromFunction")

_T = "io.statefun.sdk.types."
IntWrapper = message_class(_T + "IntWrapper")
LongWrapper = message_class(_T + "LongWrapper")
StringWrapper = message_class(_T + "StringWrapper")

# nested messages (message_factory classes do not carry them as attributes)
PersistedValue = message_class(_RR + "ToFunction.PersistedValue")
PersistedValueMutation = message_class(_RR + "FromFunction.PersistedValueMutation")
PersistedValueSpec = message_class(_RR + "FromFunction.PersistedValueSpec")
ExpirationSpec = message_class(_RR + "FromFunction.ExpirationSpec")

_mt = POOL.FindEnumTypeByName(_RR + "FromFunction.PersistedValueMutation.MutationType")
DELETE = _mt.values_by_name["DELETE"].number
MODIFY = _mt.values_by_name["MODIFY"].number
_em = POOL.FindEnumTypeByName(_RR + "FromFunction.ExpirationSpec.ExpireMode")
EXPIRE_NONE = _em.values_by_name["NONE"].number
