<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<!-- sgg: objects coloured by class. Template filled by sgg.graph.gis.objects_qml ($$categories, $$symbols). -->
<qgis version="3.22.0" styleCategories="Symbology|Labeling">
  <renderer-v2 type="categorizedSymbol" attr="class" symbollevels="0" forceraster="0" enableorderby="0" referencescale="-1">
    <categories>
$categories
    </categories>
    <symbols>
$symbols
    </symbols>
    <rotation/>
    <sizescale/>
  </renderer-v2>
  <blendMode>0</blendMode>
  <featureBlendMode>0</featureBlendMode>
  <layerOpacity>1</layerOpacity>
  <previewExpression>"class" || ' ' || "id"</previewExpression>
  <layerGeometryType>2</layerGeometryType>
</qgis>
